#!/usr/bin/env bash
# Runs every check of the project: formatting (cargo fmt --check), lints (cargo clippy,
# warnings denied), and all unit and integration tests of the workspace, including the
# real-client tests (skopeo, podman, buildah, oras-py) in crates/imagehub/tests/it/realclients/
# and the web UI's tests in headless Chromium (crates/imagehub/tests/it/browser.rs); then
# the integration suite a second time with every server's metadata in PostgreSQL and its
# blobs in S3 (a throwaway cluster of Debian's postgresql and an s3s-fs server, started
# here and removed on exit).
#
# On a fresh Debian machine (as root, or with sudo) it first installs what the tests
# need; when everything is already installed it goes straight to `cargo test`.
#
# Usage: scripts/test.sh [extra `cargo test` arguments, e.g. a test-name filter]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "==> $*"; }

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "error: installing test dependencies needs root or sudo" >&2
  exit 1
fi

# command -> Debian package providing it
declare -A PACKAGE_OF=(
  [skopeo]=skopeo
  [podman]=podman
  [buildah]=buildah
  [docker-registry]=docker-registry
  [umoci]=umoci
  [jq]=jq
  [htpasswd]=apache2-utils
  [python3]=python3
  [tar]=tar
  [gzip]=gzip
  [cc]=gcc
  [curl]=curl
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [npm]=npm
  [psql]=postgresql-client
  [pg_ctlcluster]=postgresql
)
missing=()
packages=()
for cmd in "${!PACKAGE_OF[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 && continue
  missing+=("$cmd")
  case "${PACKAGE_OF[$cmd]}" in
    gcc) packages+=(gcc libc6-dev) ;;      # the linker cargo needs
    curl) packages+=(curl ca-certificates) ;;
    *) packages+=("${PACKAGE_OF[$cmd]}") ;;
  esac
done
if ! python3 -m pip --version >/dev/null 2>&1; then
  missing+=(pip)
  packages+=(python3-pip)
fi

# Only what is missing: a command already there may come from elsewhere (Node.js from
# NodeSource brings its own npm, which Debian's npm package conflicts with).
if [[ ${#missing[@]} -gt 0 ]]; then
  say "missing: ${missing[*]}; installing Debian packages"
  "${SUDO[@]}" apt-get update
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}"
else
  say "real clients present: skopeo podman buildah umoci docker-registry chromium chromedriver"
fi

if ! python3 -c 'import oras' >/dev/null 2>&1; then
  say "installing oras-py (PyPI: oras)"
  if [[ $(id -u) -eq 0 ]]; then pip_args=(); else pip_args=(--user); fi
  # Debian's own Python refuses pip installs outside a venv unless told otherwise.
  python3 -m pip install "${pip_args[@]}" oras \
    || python3 -m pip install "${pip_args[@]}" --break-system-packages oras
  python3 -c 'import oras'
else
  say "oras-py present"
fi

# axe-core, which the browser tests inject to check every page's accessibility; a pinned
# version, installed next to the build (tests/it/browser.rs reads it from there).
AXE="target/web-tools/node_modules/axe-core/axe.min.js"
if [[ ! -f "$AXE" ]]; then
  say "installing axe-core (npm) into target/web-tools"
  npm install --no-audit --no-fund --prefix target/web-tools axe-core@4.14.1
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    say "installing the Rust toolchain (rustup, stable)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

# A real S3 server for the S3 blob store's tests (tests/it/support/s3.rs): s3s-fs from
# crates.io, a pinned version, built once into target/test-tools.
S3S="target/test-tools/bin/s3s-fs"
if [[ ! -x "$S3S" ]]; then
  say "installing s3s-fs (crates.io) into target/test-tools"
  cargo install s3s-fs@0.14.1 --features binary --locked --root target/test-tools
fi

# The house rules: formatted as rustfmt.toml says, and no clippy warning.
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    say "installing the $component component"
    rustup component add "$component"
  fi
done
say "checking formatting: cargo fmt --check"
cargo fmt --all --check
say "linting: cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "running all tests: cargo test --workspace --locked $*"
cargo test --workspace --locked "$@"

# The second pass, on the scale-out backends: a PostgreSQL cluster of our own and an S3
# server (s3s-fs) on free loopback ports, in temporary directories, both stopped and
# removed on exit; each test server creates its own database and bucket there
# (imagehub-testkit's `backend`, which also holds the S3 credentials used here).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
PG_DIR="$(mktemp -d)"
PG_PORT="$(free_port)"
S3_DIR="$(mktemp -d)"
S3_PORT="$(free_port)"
S3_PID=""
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $(id -u) -eq 0 ]] && chown postgres "$PG_DIR"
stop_backends() {
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -m immediate stop >/dev/null 2>&1 || true
  if [[ -n "$S3_PID" ]]; then
    kill "$S3_PID" 2>/dev/null || true
    wait "$S3_PID" 2>/dev/null || true # killed: not the script's failure
  fi
  rm -rf "$PG_DIR" "$S3_DIR"
}
trap stop_backends EXIT
say "starting PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT"
as_pg "$PG_BIN/initdb" -D "$PG_DIR" -A trust -U imagehub >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/log" -w start \
  -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=1000" >/dev/null
say "starting s3s-fs on 127.0.0.1:$S3_PORT"
"$S3S" --host 127.0.0.1 --port "$S3_PORT" \
  --access-key imagehub-test --secret-key imagehub-test-secret "$S3_DIR" >/dev/null 2>&1 &
S3_PID=$!
until curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"; do
  kill -0 "$S3_PID" 2>/dev/null || { echo "error: s3s-fs exited" >&2; exit 1; }
  sleep 0.1
done
say "running the integration suite on PostgreSQL and S3: cargo test --workspace --test integration --locked $*"
IMAGEHUB_TEST_POSTGRES="postgres://imagehub@127.0.0.1:$PG_PORT" \
IMAGEHUB_TEST_S3="http://127.0.0.1:$S3_PORT" IMAGEHUB_TEST_S3_ROOT="$S3_DIR" \
  cargo test --workspace --test integration --locked "$@"
say "all tests passed"
