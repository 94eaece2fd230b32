//! Logging in with real clients against the token server (accounts on): `skopeo login`,
//! `podman login` and `buildah login` with a password and with an access token, then
//! pushing and pulling as that user; a wrong password, a pull-only token, and logging out.
//!
//! Every client keeps its credentials in the isolated auth file of [`Clients`]
//! (`REGISTRY_AUTH_FILE`, passed as `--authfile` to the logins too), so the tests can
//! check what a login stored and a logout removed. The user `dev` pushes to their
//! personal namespace `dev/…`, which is private.
//!
//! The tests are async because the management API helpers are; the clients run as
//! blocking child processes, which is fine: the server has its own thread and runtime.

// The accounts tests' helpers (`Hub`, `Cred`); `auth::common` is private to `auth`, so
// the file is compiled here a second time.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Clients, OciLayout, layout_top_digest, read_json, str_at, verify_layout_blobs};
use crate::support::hub::{Cred, Hub, repo_scope};

const DEV: &str = "dev";
const DEV_PASSWORD: &str = "dev-Secret-1234";

/// A server with accounts on, the user `dev`, and clients configured for it.
async fn start() -> (Hub, Clients) {
    let hub = Hub::start();
    hub.create_user(DEV, DEV_PASSWORD).await;
    let clients = Clients::new(&hub.server().host());
    (hub, clients)
}

fn dev() -> Cred {
    Cred::basic(DEV, DEV_PASSWORD)
}

/// `PROGRAM login --tls-verify=false --authfile <auth.json> -u USER -p SECRET HOST`.
fn login(c: &Clients, program: &str, user: &str, secret: &str) {
    let authfile = c.path("auth.json");
    c.run(
        program,
        &[
            "login",
            "--tls-verify=false",
            "--authfile",
            &authfile,
            "-u",
            user,
            "-p",
            secret,
            c.host(),
        ],
    );
}

/// The entry the auth file holds for the registry under test, if any.
fn stored_login(c: &Clients) -> Option<Value> {
    read_json(c.path("auth.json"))["auths"].get(c.host()).cloned()
}

/// Asserts that the auth file holds credentials for the registry under test.
#[track_caller]
fn assert_logged_in(c: &Clients) {
    let entry = stored_login(c).unwrap_or_else(|| panic!("no credentials stored for {}", c.host()));
    assert!(entry["auth"].as_str().is_some_and(|a| !a.is_empty()), "{entry:#}");
}

/// Writes a one-layer OCI layout image tagged `v1` under `name` in the temp dir;
/// returns the `oci:` reference skopeo reads it from, and its manifest digest.
fn layout_image(c: &Clients, name: &str, text: &str) -> (String, String) {
    let layout = OciLayout::create(c.path(name));
    let image = layout.image("amd64", &[("hello.txt", text.as_bytes())], json!({}));
    layout.tag(&image.manifest, "v1");
    (format!("oci:{}:v1", layout.dir.display()), str_at(&image.manifest, "/digest").to_string())
}

/// [`Clients::skopeo_pull`] of a one-image reference into a new OCI layout `name`; checks
/// its blobs and returns the digest its `index.json` points at.
fn skopeo_pull_digest(c: &Clients, reference: &str, name: &str) -> String {
    let dir = c.skopeo_pull(reference, name);
    assert_eq!(verify_layout_blobs(&dir), 3, "manifest, config and one layer");
    layout_top_digest(&dir)
}

/// A new access token of `dev` that may pull and push; clients send it as the password.
async fn pull_push_token(hub: &Hub, name: &str) -> String {
    let (_, secret) = hub.create_token(&dev(), name, &["pull", "push"], None).await;
    assert!(secret.starts_with("ihp_"), "{secret}");
    secret
}

/// Runs a command that must fail; returns what it printed (stdout, then stderr).
fn run_failing(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let printed =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        !out.status.success(),
        "{:?} {:?} succeeded but should have failed:\n{printed}",
        cmd.get_program(),
        cmd.get_args()
    );
    printed
}

/// `skopeo --policy <policy.json> ARGS...`, which must fail.
fn skopeo_failing(c: &Clients, args: &[&str]) -> String {
    run_failing(c.command("skopeo").args(["--policy", &c.policy()]).args(args))
}

/// The tags of `repo` as `dev` sees them over the registry API; `None` when the
/// repository does not exist.
async fn tags_as_dev(hub: &Hub, repo: &str) -> Option<Vec<String>> {
    let token =
        hub.token(&dev(), &[repo_scope(repo, "pull")]).await.expect("dev gets a pull token");
    let reply = hub.send(hub.v2(Method::GET, &format!("/v2/{repo}/tags/list"), Some(&token))).await;
    match reply.status {
        StatusCode::NOT_FOUND => None,
        StatusCode::OK => {
            Some(serde_json::from_value(reply.json()["tags"].clone()).expect("tag list"))
        }
        other => panic!("tag list of {repo}: {other}: {}", reply.text()),
    }
}

#[tokio::test]
async fn skopeo_login_with_password_then_push_and_pull() {
    let (_hub, c) = start().await;
    assert_eq!(stored_login(&c), None);

    login(&c, "skopeo", DEV, DEV_PASSWORD);
    assert_logged_in(&c);

    let (src, digest) = layout_image(&c, "src", "pushed by skopeo after skopeo login\n");
    assert_eq!(c.skopeo_push(&src, "dev/app:v1"), digest);
    assert_eq!(skopeo_pull_digest(&c, "dev/app:v1", "pulled"), digest);
    let info = c.skopeo_inspect("dev/app:v1");
    assert_eq!(str_at(&info, "/Digest"), digest, "{info:#}");
}

/// `program` (podman or buildah) builds a tiny image `localhost/login-test:v1`, logs in as
/// `dev` with `secret` (a password or an access token) and pushes the image to
/// `dev/PROGRAM:v1`; checks that the tag arrived and returns the pushed digest.
async fn build_login_push(hub: &Hub, c: &Clients, program: &str, secret: &str) -> String {
    let note = format!("built by {program}, pushed after {program} login\n");
    match program {
        "podman" => c.podman_build_scratch("localhost/login-test:v1", "note.txt", &note, &[]),
        "buildah" => c.buildah_build_scratch("localhost/login-test:v1", "note.txt", &note, &[]),
        other => panic!("no scratch build for {other}"),
    }

    login(c, program, DEV, secret);
    assert_logged_in(c);
    let repo = format!("dev/{program}");
    let pushed = c.push_local_image(program, "localhost/login-test:v1", &format!("{repo}:v1"));
    assert_eq!(tags_as_dev(hub, &repo).await, Some(vec!["v1".to_string()]));
    pushed
}

/// podman builds, logs in with `secret`, pushes, then pulls the image back into an empty
/// local store: the pull needs the stored login too, `dev/podman` being private.
async fn podman_login_push_and_pull(hub: &Hub, c: &Clients, secret: &str) {
    let pushed = build_login_push(hub, c, "podman", secret).await;
    c.run("podman", &["rmi", "localhost/login-test:v1"]);
    c.podman_pull("dev/podman:v1");
    let info = c.podman_inspect(&format!("{}/dev/podman:v1", c.host()));
    assert_eq!(str_at(&info, "/Digest"), pushed, "{info:#}");
}

/// buildah builds, logs in with `secret` and pushes; the registry serves what was pushed.
async fn buildah_login_push(hub: &Hub, c: &Clients, secret: &str) {
    let pushed = build_login_push(hub, c, "buildah", secret).await;
    let info = c.skopeo_inspect("dev/buildah:v1");
    assert_eq!(str_at(&info, "/Digest"), pushed, "{info:#}");
}

#[tokio::test]
async fn podman_login_then_push_and_pull() {
    let (hub, c) = start().await;
    podman_login_push_and_pull(&hub, &c, DEV_PASSWORD).await;
}

#[tokio::test]
async fn podman_login_with_an_access_token_then_push_and_pull() {
    let (hub, c) = start().await;
    let secret = pull_push_token(&hub, "podman-ci").await;
    podman_login_push_and_pull(&hub, &c, &secret).await;
}

#[tokio::test]
async fn buildah_login_then_push() {
    let (hub, c) = start().await;
    buildah_login_push(&hub, &c, DEV_PASSWORD).await;
}

#[tokio::test]
async fn buildah_login_with_an_access_token_then_push() {
    let (hub, c) = start().await;
    let secret = pull_push_token(&hub, "buildah-ci").await;
    buildah_login_push(&hub, &c, &secret).await;
}

#[tokio::test]
async fn skopeo_login_with_an_access_token_then_push_and_pull() {
    let (hub, c) = start().await;
    let secret = pull_push_token(&hub, "ci").await;

    login(&c, "skopeo", DEV, &secret);
    assert_logged_in(&c);

    let (src, digest) = layout_image(&c, "src", "pushed with an access token\n");
    assert_eq!(c.skopeo_push(&src, "dev/ci:v1"), digest);
    assert_eq!(skopeo_pull_digest(&c, "dev/ci:v1", "pulled"), digest);
    assert_eq!(tags_as_dev(&hub, "dev/ci").await, Some(vec!["v1".to_string()]));
}

#[tokio::test]
async fn skopeo_login_with_a_wrong_password_fails_and_stores_nothing() {
    let (_hub, c) = start().await;
    let authfile = c.path("auth.json");
    let printed = skopeo_failing(
        &c,
        &[
            "login",
            "--tls-verify=false",
            "--authfile",
            &authfile,
            "-u",
            DEV,
            "-p",
            "not-the-password",
            c.host(),
        ],
    );
    let lower = printed.to_lowercase();
    assert!(
        lower.contains("unauthorized") || lower.contains("invalid username/password"),
        "{printed}"
    );
    assert_eq!(stored_login(&c), None, "a failed login stored credentials");
}

#[tokio::test]
async fn a_pull_only_token_pulls_but_cannot_push() {
    let (hub, c) = start().await;
    // dev pushes dev/app:v1 with the password.
    login(&c, "skopeo", DEV, DEV_PASSWORD);
    let (src, digest) = layout_image(&c, "src", "pushed by dev\n");
    assert_eq!(c.skopeo_push(&src, "dev/app:v1"), digest);

    // Then logs in with a pull-only token instead: pulling works…
    let (_, secret) = hub.create_token(&dev(), "read-only", &["pull"], None).await;
    login(&c, "skopeo", DEV, &secret);
    assert_eq!(skopeo_pull_digest(&c, "dev/app:v1", "pulled"), digest);

    // …pushing does not, neither a new tag nor a new repository.
    let (src2, _) = layout_image(&c, "src2", "must not arrive\n");
    for target in ["dev/app:v2", "dev/readonly:v1"] {
        let printed =
            skopeo_failing(&c, &["copy", "--dest-tls-verify=false", &src2, &c.docker(target)]);
        let lower = printed.to_lowercase();
        assert!(
            lower.contains("unauthorized") || lower.contains("denied"),
            "push to {target}:\n{printed}"
        );
    }
    assert_eq!(tags_as_dev(&hub, "dev/app").await, Some(vec!["v1".to_string()]), "a tag appeared");
    assert_eq!(tags_as_dev(&hub, "dev/readonly").await, None, "a repository appeared");
}

#[tokio::test]
async fn after_logout_a_private_repository_is_closed_until_it_is_made_public() {
    let (hub, c) = start().await;
    login(&c, "skopeo", DEV, DEV_PASSWORD);
    let (src, digest) = layout_image(&c, "src", "private, then public\n");
    assert_eq!(c.skopeo_push(&src, "dev/app:v1"), digest);

    c.skopeo(&["logout", c.host()]);
    assert_eq!(stored_login(&c), None, "logout left credentials behind");

    // Anonymous now: the private repository cannot be read.
    let pulled = c.path("pulled");
    let printed = skopeo_failing(
        &c,
        &["copy", "--src-tls-verify=false", &c.docker("dev/app:v1"), &format!("oci:{pulled}:v1")],
    );
    let lower = printed.to_lowercase();
    assert!(lower.contains("unauthorized") || lower.contains("denied"), "{printed}");
    skopeo_failing(&c, &["inspect", "--tls-verify=false", &c.docker("dev/app:v1")]);

    // dev makes it public; anyone may pull it now, still nobody may push anonymously.
    hub.api(
        &dev(),
        Method::PATCH,
        "/api/v1/orgs/dev/repos/app",
        Some(json!({"visibility": "public"})),
    )
    .await
    .expect_status(200, "dev makes dev/app public");
    let info = c.skopeo_inspect("dev/app:v1");
    assert_eq!(str_at(&info, "/Digest"), digest, "{info:#}");
    assert_eq!(skopeo_pull_digest(&c, "dev/app:v1", "pulled-anonymously"), digest);
    skopeo_failing(&c, &["copy", "--dest-tls-verify=false", &src, &c.docker("dev/app:anonymous")]);
    assert_eq!(tags_as_dev(&hub, "dev/app").await, Some(vec!["v1".to_string()]));
}
