//! Real-client tests: unmodified skopeo, podman, buildah and oras-py against a live imagehub.
//!
//! Each test starts its own server, gives every client an isolated configuration in a temp
//! directory (storage, registries, auth, policy, tmp) and drives the CLIs with
//! `std::process::Command`. No image is ever pulled from the network: images are written
//! here as OCI layouts or built `from scratch`. A missing client is a test failure that
//! points at `scripts/test.sh`, which installs the clients.

mod buildah;
mod login;
mod oras;
mod podman;
mod skopeo;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// OCI media types of the documents these tests write and expect.
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Where to point users when a client is missing.
const INSTALL_HINT: &str =
    "run `scripts/test.sh`, which installs the real clients (skopeo, podman, buildah, oras-py)";

/// An isolated client environment for one test: a temp dir holding every client's
/// configuration, storage and temporary files. Dropping it removes everything.
pub struct Clients {
    dir: tempfile::TempDir,
    host: String,
}

impl Clients {
    /// Writes the client configuration for a registry at `host` (`127.0.0.1:PORT`).
    pub fn new(host: &str) -> Clients {
        let dir = tempfile::Builder::new()
            .prefix("imagehub-realclients.")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path();
        for sub in ["tmp", "docker", "storage", "home"] {
            fs::create_dir_all(root.join(sub)).expect("create client dirs");
        }
        let d = root.display();
        write(
            root.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/storage/run\"\ngraphroot = \"{d}/storage/root\"\n"
            ),
        );
        write(
            root.join("containers.conf"),
            format!(
                "[engine]\ntmp_dir = \"{d}/storage/engine-tmp\"\nevents_logger = \"none\"\n\
                 cgroup_manager = \"cgroupfs\"\n\n[network]\nnetwork_config_dir = \"{d}/storage/networks\"\n"
            ),
        );
        write(
            root.join("registries.conf"),
            format!(
                "unqualified-search-registries = []\n\n[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"
            ),
        );
        write(root.join("policy.json"), r#"{"default": [{"type": "insecureAcceptAnything"}]}"#);
        // buildah and podman refuse an auth file that does not exist.
        write(root.join("auth.json"), "{}");
        Clients { dir, host: host.to_string() }
    }

    /// The registry host as clients take it: `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `docker://HOST/REFERENCE`, an image on the server under test.
    pub fn docker(&self, reference: &str) -> String {
        format!("docker://{}/{reference}", self.host)
    }

    /// A path inside the temp dir (temp paths are UTF-8, so plain strings do).
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The signature policy file accepting anything (no signatures in these tests).
    pub fn policy(&self) -> String {
        self.path("policy.json")
    }

    /// A command for `program` with the isolated environment; fails the test, pointing
    /// at `scripts/test.sh`, when the program is not installed.
    pub fn command(&self, program: &str) -> Command {
        require_program(program);
        let mut cmd = Command::new(program);
        cmd.env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("CONTAINERS_CONF", self.path("containers.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"))
            .env("REGISTRY_AUTH_FILE", self.path("auth.json"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("TMPDIR", self.path("tmp"))
            .env("HOME", self.path("home"));
        cmd
    }

    /// Runs `program ARGS...` in the isolated environment (see [`run`]).
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        run(self.command(program).args(args))
    }

    /// Runs `skopeo --policy <policy.json> ARGS...`.
    pub fn skopeo(&self, args: &[&str]) -> Output {
        run(self.command("skopeo").args(["--policy", &self.policy()]).args(args))
    }

    /// `skopeo inspect` of `docker://HOST/REFERENCE`, parsed.
    pub fn skopeo_inspect(&self, reference: &str) -> Value {
        parse_json(&self.skopeo(&["inspect", "--tls-verify=false", &self.docker(reference)]))
    }

    /// The raw manifest bytes of `docker://HOST/REFERENCE`, as skopeo fetched them.
    pub fn skopeo_raw_manifest(&self, reference: &str) -> Vec<u8> {
        self.skopeo(&["inspect", "--tls-verify=false", "--raw", &self.docker(reference)]).stdout
    }

    /// Pushes `src` (e.g. an `oci:` layout) to `docker://HOST/REFERENCE` with skopeo,
    /// keeping its digests, so the registry must end up with exactly the manifest given;
    /// returns the digest skopeo reports having pushed.
    pub fn skopeo_push(&self, src: &str, reference: &str) -> String {
        self.skopeo_push_with(&[], src, reference)
    }

    /// [`Clients::skopeo_push`] of a whole image index with every image in it (`--all`).
    pub fn skopeo_push_all(&self, src: &str, reference: &str) -> String {
        self.skopeo_push_with(&["--all"], src, reference)
    }

    fn skopeo_push_with(&self, flags: &[&str], src: &str, reference: &str) -> String {
        let digest_file = self.path("push.digest");
        let dest = self.docker(reference);
        let mut args = vec!["copy"];
        args.extend(flags);
        args.extend([
            "--dest-tls-verify=false",
            "--preserve-digests",
            "--digestfile",
            &digest_file,
            src,
            &dest,
        ]);
        self.skopeo(&args);
        read_digest_file(&digest_file)
    }

    /// Pulls `docker://HOST/REFERENCE` with skopeo into a new OCI layout `name` in the
    /// temp dir (tag `v1`), keeping its digests, so that the tests can check the blobs
    /// byte for byte; returns the layout's directory.
    pub fn skopeo_pull(&self, reference: &str, name: &str) -> String {
        self.skopeo_pull_with(&[], reference, name)
    }

    /// [`Clients::skopeo_pull`] of a whole image index with every image in it (`--all`).
    pub fn skopeo_pull_all(&self, reference: &str, name: &str) -> String {
        self.skopeo_pull_with(&["--all"], reference, name)
    }

    fn skopeo_pull_with(&self, flags: &[&str], reference: &str, name: &str) -> String {
        let dir = self.path(name);
        let src = self.docker(reference);
        let dest = format!("oci:{dir}:v1");
        let mut args = vec!["copy"];
        args.extend(flags);
        args.extend(["--src-tls-verify=false", "--preserve-digests", &src, &dest]);
        self.skopeo(&args);
        dir
    }

    /// Builds the local image `tag` with `podman build` from a `FROM scratch`
    /// Containerfile that copies one file (`file`, holding `contents`, to `/file`) and
    /// sets `labels`: a tiny image made without pulling anything from the network.
    pub fn podman_build_scratch(
        &self,
        tag: &str,
        file: &str,
        contents: &str,
        labels: &[(&str, &str)],
    ) {
        let context = self.path("context");
        fs::create_dir_all(&context).expect("create build context");
        write(Path::new(&context).join(file), contents);
        let mut containerfile = format!("FROM scratch\nCOPY {file} /{file}\n");
        for (key, value) in labels {
            containerfile.push_str(&format!("LABEL {key}=\"{value}\"\n"));
        }
        write(Path::new(&context).join("Containerfile"), containerfile);
        let policy = self.policy();
        self.run(
            "podman",
            &[
                "build",
                "--isolation",
                "chroot",
                "--no-cache",
                "--signature-policy",
                &policy,
                "-t",
                tag,
                &context,
            ],
        );
    }

    /// Builds the local image `tag` (linux/amd64) with buildah `from scratch`, copying one
    /// file (`file`, holding `contents`, to `/file`) and setting `labels`: a tiny image
    /// made without pulling anything from the network.
    pub fn buildah_build_scratch(
        &self,
        tag: &str,
        file: &str,
        contents: &str,
        labels: &[(&str, &str)],
    ) {
        let policy = self.policy();
        let src = self.path(file);
        write(&src, contents);
        let container = self
            .run("buildah", &["from", "--signature-policy", &policy, "scratch"])
            .stdout_trimmed();
        self.run("buildah", &["copy", &container, &src, &format!("/{file}")]);
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut config = vec!["config"];
        for label in &labels {
            config.extend(["--label", label]);
        }
        config.extend(["--os", "linux", "--arch", "amd64", &container]);
        self.run("buildah", &config);
        self.run("buildah", &["commit", "--rm", "--signature-policy", &policy, &container, tag]);
    }

    /// Pushes the local image `local` to `docker://HOST/REFERENCE` with `program` push
    /// (podman or buildah, which take the same flags); returns the digest the client
    /// reports having pushed, to compare with what the registry serves.
    pub fn push_local_image(&self, program: &str, local: &str, reference: &str) -> String {
        let policy = self.policy();
        let digest_file = self.path("push.digest");
        self.run(
            program,
            &[
                "push",
                "--tls-verify=false",
                "--signature-policy",
                &policy,
                "--digestfile",
                &digest_file,
                local,
                &self.docker(reference),
            ],
        );
        read_digest_file(&digest_file)
    }

    /// Pulls `HOST/REFERENCE` into podman's local store.
    pub fn podman_pull(&self, reference: &str) {
        let policy = self.policy();
        let image = format!("{}/{reference}", self.host);
        self.run("podman", &["pull", "--tls-verify=false", "--signature-policy", &policy, &image]);
    }

    /// `podman image inspect` of the local image `image`, parsed: the one entry for it.
    pub fn podman_inspect(&self, image: &str) -> Value {
        parse_json(&self.run("podman", &["image", "inspect", image]))[0].clone()
    }
}

/// Fails the test when `program` is not on `PATH`.
pub fn require_program(program: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| dir.join(program).is_file());
    assert!(found, "`{program}` is not installed: {INSTALL_HINT}");
}

/// What a finished command printed.
pub struct Output {
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr (skopeo's `--debug` log goes here).
    pub stderr: Vec<u8>,
}

impl Output {
    /// stdout as text (lossy).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// stdout without surrounding whitespace, e.g. an id a command printed.
    pub fn stdout_trimmed(&self) -> String {
        self.stdout_str().trim().to_string()
    }
    /// stderr as text (lossy).
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs `cmd` to completion; on a non-zero exit fails the test with the command line,
/// its stdout and its stderr.
pub fn run(cmd: &mut Command) -> Output {
    let line = command_line(cmd);
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
    let output = Output { stdout: out.stdout, stderr: out.stderr };
    assert!(
        out.status.success(),
        "command failed ({}): {line}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        output.stdout_str(),
        output.stderr_str()
    );
    output
}

fn command_line(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        format!("'{}'", s.replace('\'', r"'\''"))
    } else {
        s.into_owned()
    }
}

/// A command's stdout as JSON; fails the test with both outputs otherwise.
pub fn parse_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}):\n{}\n--- stderr ---\n{}", out.stdout_str(), out.stderr_str())
    })
}

/// Writes a file, failing the test with the path on error.
pub fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
    let path = path.as_ref();
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Reads a file, failing the test with the path on error.
pub fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Reads a JSON file.
pub fn read_json(path: impl AsRef<Path>) -> Value {
    let path = path.as_ref();
    serde_json::from_slice(&read(path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The digest a client wrote with `--digestfile`.
pub fn read_digest_file(path: impl AsRef<Path>) -> String {
    String::from_utf8_lossy(&read(path)).trim().to_string()
}

/// One file out of a (possibly gzip-compressed) layer tarball, via `tar -xO`.
pub fn file_in_layer(layer: impl AsRef<Path>, name: &str) -> Vec<u8> {
    require_program("tar");
    run(Command::new("tar").arg("-xOf").arg(layer.as_ref()).arg(name)).stdout
}

/// An uncompressed ustar archive of regular files (mode 0644, root-owned, fixed mtime).
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    fn put(header: &mut [u8], offset: usize, value: &[u8]) {
        header[offset..offset + value.len()].copy_from_slice(value);
    }
    fn octal(header: &mut [u8], offset: usize, len: usize, value: u64) {
        put(header, offset, format!("{value:0width$o}\0", width = len - 1).as_bytes());
    }
    let mut out = Vec::new();
    for (name, data) in files {
        assert!(name.len() < 100, "tar helper: name too long: {name}");
        let mut header = [0u8; 512];
        put(&mut header, 0, name.as_bytes());
        octal(&mut header, 100, 8, 0o644); // mode
        octal(&mut header, 108, 8, 0); // uid
        octal(&mut header, 116, 8, 0); // gid
        octal(&mut header, 124, 12, data.len() as u64); // size
        octal(&mut header, 136, 12, 1_700_000_000); // mtime
        header[148..156].copy_from_slice(b"        "); // checksum placeholder
        header[156] = b'0'; // regular file
        put(&mut header, 257, b"ustar\0");
        put(&mut header, 263, b"00");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0); // two zero blocks end the archive
    out
}

/// An image written into an [`OciLayout`].
pub struct LayoutImage {
    /// Descriptor of the manifest (with `platform`).
    pub manifest: Value,
    /// Digest of the image config blob.
    pub config_digest: String,
    /// Digest of the one (uncompressed tar) layer.
    pub layer_digest: String,
}

/// Writes an OCI image layout (`oci-layout`, `blobs/sha256/*`, `index.json`) by hand.
pub struct OciLayout {
    /// The layout's root directory (holds `index.json`).
    pub dir: PathBuf,
}

impl OciLayout {
    /// Creates an empty layout at `dir`.
    pub fn create(dir: impl Into<PathBuf>) -> OciLayout {
        let dir = dir.into();
        fs::create_dir_all(dir.join("blobs/sha256")).expect("create layout dirs");
        write(dir.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#);
        OciLayout { dir }
    }

    /// Stores a blob and returns its descriptor.
    pub fn blob(&self, bytes: &[u8], media_type: &str) -> Value {
        let d = digest(bytes);
        write(self.blob_path(&d), bytes);
        json!({ "mediaType": media_type, "digest": d, "size": bytes.len() })
    }

    /// Where the blob `digest` lives in this layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        blob_path(&self.dir, digest)
    }

    /// A single-layer linux image of `files` for `arch`, with `labels` in its config.
    pub fn image(&self, arch: &str, files: &[(&str, &[u8])], labels: Value) -> LayoutImage {
        self.image_with_layers(arch, &[(MT_LAYER_TAR, tar(files))], labels)
    }

    /// A linux image for `arch` whose layers (bottom first) are the given blobs with
    /// their media types (compressed or not), with `labels` in its config.
    pub fn image_with_layers(
        &self,
        arch: &str,
        layers: &[(&str, Vec<u8>)],
        labels: Value,
    ) -> LayoutImage {
        let descriptors: Vec<Value> =
            layers.iter().map(|(media_type, bytes)| self.blob(bytes, media_type)).collect();
        // diff_ids are of the uncompressed tars; skopeo does not check them, and the
        // tests do not depend on them, so the blob digests stand in.
        let diff_ids: Vec<Value> = descriptors.iter().map(|d| d["digest"].clone()).collect();
        let config = json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": { "Labels": labels },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": [{ "created": "2024-01-01T00:00:00Z", "created_by": "imagehub realclients test" }],
        });
        let config = self.blob(&to_bytes(&config), MT_CONFIG);
        let layer = descriptors.last().cloned().unwrap_or(Value::Null);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config,
            "layers": descriptors,
        });
        let mut manifest = self.blob(&to_bytes(&manifest), MT_MANIFEST);
        manifest["platform"] = json!({ "architecture": arch, "os": "linux" });
        LayoutImage {
            manifest,
            config_digest: config["digest"].as_str().expect("digest").to_string(),
            layer_digest: layer["digest"].as_str().expect("digest").to_string(),
        }
    }

    /// An image index over `manifests`; returns its descriptor.
    pub fn index(&self, manifests: &[&Value]) -> Value {
        let index = json!({ "schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests });
        self.blob(&to_bytes(&index), MT_INDEX)
    }

    /// Writes `index.json` with `descriptor` as the only entry, named `tag`.
    pub fn tag(&self, descriptor: &Value, tag: &str) {
        let mut entry = descriptor.clone();
        if let Some(map) = entry.as_object_mut() {
            map.remove("platform");
        }
        entry["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
        let index = json!({ "schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [entry] });
        write(self.dir.join("index.json"), to_bytes(&index));
    }
}

/// `DIR/blobs/sha256/<hex>` for `sha256:<hex>`.
pub fn blob_path(layout_dir: impl AsRef<Path>, digest: &str) -> PathBuf {
    let hex =
        digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
    layout_dir.as_ref().join("blobs/sha256").join(hex)
}

/// Checks that every blob of an OCI layout hashes to its file name; returns how many there are.
pub fn verify_layout_blobs(layout_dir: impl AsRef<Path>) -> usize {
    let layout_dir = layout_dir.as_ref();
    let dir = layout_dir.join("blobs/sha256");
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().expect("file name").to_string_lossy().into_owned();
        assert_eq!(
            digest(&read(&path)),
            format!("sha256:{name}"),
            "corrupt blob {}",
            path.display()
        );
        count += 1;
    }
    count
}

/// The digest `index.json` of an OCI layout points at (its only entry).
pub fn layout_top_digest(layout_dir: impl AsRef<Path>) -> String {
    let index = read_json(layout_dir.as_ref().join("index.json"));
    let manifests = index["manifests"].as_array().expect("index.json manifests");
    assert_eq!(manifests.len(), 1, "index.json: {index}");
    manifests[0]["digest"].as_str().expect("digest").to_string()
}

/// Compact JSON bytes, as pushed (digests are over these exact bytes).
pub fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialize JSON")
}

/// A string field of a JSON value, failing the test with the whole value otherwise.
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
}
