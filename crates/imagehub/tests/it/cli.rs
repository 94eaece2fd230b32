//! The `imagehub` client commands, run as a process against a real server: credentials
//! checked and kept where docker keeps them, read back from docker's file, podman's
//! `auth.json` or a credential helper; exit codes scripts can tell apart.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::process::imagehub_bin;
use crate::support::hub::{Cred, Hub};

/// What a command did.
pub(crate) struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `imagehub ARGS` with a home of its own under `home` (docker's and podman's files
/// there), `stdin` fed in, and `path` first on PATH.
pub(crate) fn imagehub(home: &Path, args: &[&str], stdin: &str, path: Option<&Path>) -> Ran {
    let mut search = std::env::var("PATH").unwrap_or_default();
    if let Some(dir) = path {
        search = format!("{}:{search}", dir.display());
    }
    let mut child = Command::new(imagehub_bin())
        .args(args)
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("REGISTRY_AUTH_FILE", home.join("auth.json"))
        .env("PATH", search)
        .env_remove("IMAGEHUB_REGISTRY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run imagehub");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let output = child.wait_with_output().expect("wait for imagehub");
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A hub where olga keeps the private `olga/private:v1`.
pub(crate) async fn hub_with_private_image() -> (Hub, String) {
    let hub = Hub::start();
    hub.create_user("olga", "olga-password-1").await;
    hub.push_with_readme(&Cred::basic("olga", "olga-password-1"), "olga/private", "v1", "# Mine")
        .await;
    let host = hub.server().host();
    (hub, host)
}

/// A home where olga has logged in to `host`.
pub(crate) fn olgas_home(host: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("home");
    let login = imagehub(
        home.path(),
        &["login", host, "-u", "olga", "--password-stdin"],
        "olga-password-1\n",
        None,
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    home
}

#[tokio::test]
async fn login_keeps_checked_credentials_where_docker_does_and_commands_use_them() {
    let (_hub, host) = hub_with_private_image().await;
    let home = tempfile::tempdir().expect("home");
    let repo = format!("{host}/olga/private");

    let refused = imagehub(home.path(), &["tags", &repo], "", None);
    assert_eq!(refused.code, 4, "unauthorized: {}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!("hint: run: imagehub login {host}")),
        "{}",
        refused.stderr
    );
    let wrong = imagehub(
        home.path(),
        &["login", &host, "-u", "olga", "--password-stdin"],
        "wrong-password\n",
        None,
    );
    assert_eq!(wrong.code, 4, "a wrong password: {}", wrong.stderr);
    assert!(!home.path().join(".docker/config.json").exists(), "nothing kept");

    let login = imagehub(
        home.path(),
        &["login", &host, "-u", "olga", "--password-stdin"],
        "olga-password-1\n",
        None,
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(login.stdout.contains("Login succeeded"), "{}", login.stdout);
    let config: Value = serde_json::from_slice(
        &std::fs::read(home.path().join(".docker/config.json")).expect("config.json"),
    )
    .expect("JSON");
    assert!(config["auths"][&host]["auth"].is_string(), "{config}");

    let tags = imagehub(home.path(), &["tags", &repo, "--json"], "", None);
    assert_eq!(tags.code, 0, "{}", tags.stderr);
    let listed: Value = serde_json::from_str(&tags.stdout).expect("JSON");
    assert_eq!(listed["tags"], serde_json::json!(["v1"]), "{listed}");
    let missing = imagehub(home.path(), &["tags", &format!("{host}/olga/nothing")], "", None);
    assert_eq!(missing.code, 3, "not found: {}", missing.stderr);
    let usage = imagehub(home.path(), &["tags"], "", None);
    assert_eq!(usage.code, 2, "usage: {}", usage.stderr);

    let logout = imagehub(home.path(), &["logout", &host], "", None);
    assert_eq!(logout.code, 0, "{}", logout.stderr);
    assert_eq!(imagehub(home.path(), &["tags", &repo], "", None).code, 4, "logged out");
}

#[tokio::test]
async fn what_podman_login_wrote_is_used() {
    let (_hub, host) = hub_with_private_image().await;
    let home = tempfile::tempdir().expect("home");
    let auth_file = home.path().join("auth.json");
    let podman = Command::new("podman")
        .args(["login", "--tls-verify=false", "--authfile"])
        .arg(&auth_file)
        .args(["-u", "olga", "-p", "olga-password-1", &host])
        .env("HOME", home.path())
        .output()
        .expect("run podman login");
    assert!(podman.status.success(), "podman login: {}", String::from_utf8_lossy(&podman.stderr));
    let tags = imagehub(home.path(), &["tags", &format!("{host}/olga/private")], "", None);
    assert_eq!((tags.code, tags.stdout.trim()), (0, "v1"), "{}", tags.stderr);
}

#[tokio::test]
async fn a_credential_helper_is_asked_to_store_and_to_give() {
    let (_hub, host) = hub_with_private_image().await;
    let home = tempfile::tempdir().expect("home");
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let vault = home.path().join("vault.json");
    // A helper keeping one secret in a file, speaking docker's helper protocol.
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  store) cat > '{vault}' ;;\n  get) read server; if [ -f '{vault}' ]; then cat '{vault}'; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n  erase) rm -f '{vault}' ;;\nesac\n",
        vault = vault.display()
    );
    let helper = bin.join("docker-credential-testvault");
    std::fs::write(&helper, script).expect("write the helper");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir_all(home.path().join(".docker")).expect("docker dir");
    let config = serde_json::json!({"credHelpers": {host.clone(): "testvault"}});
    std::fs::write(home.path().join(".docker/config.json"), config.to_string()).expect("config");

    let repo = format!("{host}/olga/private");
    assert_eq!(
        imagehub(home.path(), &["tags", &repo], "", Some(&bin)).code,
        4,
        "the helper has nothing yet"
    );
    let login = imagehub(
        home.path(),
        &["login", &host, "-u", "olga", "--password-stdin"],
        "olga-password-1\n",
        Some(&bin),
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(login.stdout.contains("docker-credential-testvault"), "{}", login.stdout);
    let kept: Value =
        serde_json::from_slice(&std::fs::read(&vault).expect("the vault")).expect("JSON");
    assert_eq!(
        (kept["ServerURL"].as_str(), kept["Username"].as_str()),
        (Some(host.as_str()), Some("olga"))
    );
    let config = std::fs::read_to_string(home.path().join(".docker/config.json")).expect("config");
    assert!(!config.contains("olga-password-1"), "the secret stays with the helper: {config}");
    let tags = imagehub(home.path(), &["tags", &repo], "", Some(&bin));
    assert_eq!((tags.code, tags.stdout.trim()), (0, "v1"), "{}", tags.stderr);
}

#[test]
fn completions_and_the_manual_page_are_generated() {
    let home = tempfile::tempdir().expect("home");
    for shell in ["bash", "zsh", "fish"] {
        let ran = imagehub(home.path(), &["completions", shell], "", None);
        assert_eq!(ran.code, 0, "{shell}: {}", ran.stderr);
        assert!(ran.stdout.contains("imagehub") && ran.stdout.contains("login"), "{shell}");
    }
    let man = imagehub(home.path(), &["man"], "", None);
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH imagehub"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert_eq!(
        imagehub(home.path(), &["completions", "cmd.exe"], "", None).code,
        2,
        "an unknown shell is a usage error"
    );
}

#[tokio::test]
async fn search_inspect_and_rm_talk_to_the_hub_with_the_kept_credentials() {
    let (_hub, host) = hub_with_private_image().await;
    let home = tempfile::tempdir().expect("home");
    let login = imagehub(
        home.path(),
        &["login", &host, "-u", "olga", "--password-stdin"],
        "olga-password-1\n",
        None,
    );
    assert_eq!(login.code, 0, "{}", login.stderr);

    let search = imagehub(home.path(), &["search", "private", "--registry", &host], "", None);
    assert_eq!(search.code, 0, "{}", search.stderr);
    assert!(
        search.stdout.starts_with("NAME") && search.stdout.contains("olga/private"),
        "{}",
        search.stdout
    );
    let json =
        imagehub(home.path(), &["search", "private", "--registry", &host, "--json"], "", None);
    let found: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(found["results"][0]["name"], "olga/private", "{found}");

    let image = format!("{host}/olga/private:v1");
    let inspect = imagehub(home.path(), &["inspect", &image], "", None);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    assert!(
        inspect.stdout.contains("Digest:       sha256:")
            && inspect.stdout.contains("Pushed:")
            && inspect.stdout.lines().any(|l| l.starts_with("linux/amd64  (this manifest)  ")),
        "{}",
        inspect.stdout
    );
    let json = imagehub(home.path(), &["inspect", &image, "--json"], "", None);
    let shown: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(shown["name"], "olga/private:v1", "{shown}");

    let stranger = tempfile::tempdir().expect("another home");
    let hidden = imagehub(stranger.path(), &["inspect", &image], "", None);
    assert_eq!(hidden.code, 3, "a private image is not found for others: {}", hidden.stderr);
    let rm = imagehub(home.path(), &["rm", &image], "", None);
    assert_eq!(rm.code, 0, "{}", rm.stderr);
    assert_eq!(imagehub(home.path(), &["inspect", &image], "", None).code, 3, "gone");
    let bad = imagehub(home.path(), &["inspect", "Not A Name"], "", None);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

#[tokio::test]
async fn import_waits_for_the_job_and_reports_its_outcome() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream =
        crate::support::distribution::Distribution::start(&dir.path().join("storage"), None);
    let registry = crate::support::registry::Registry::at(&upstream.url());
    let (_, digest) =
        crate::support::registry::push_image(&registry, "team/app", "v1", "cli").await;
    let insecure = upstream.host.clone();
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![insecure]);
    hub.olga_with_public_acme().await;
    let host = hub.server().host();
    let home = tempfile::tempdir().expect("home");
    let login = imagehub(
        home.path(),
        &["login", &host, "-u", "olga", "--password-stdin"],
        "olga-password-1\n",
        None,
    );
    assert_eq!(login.code, 0, "{}", login.stderr);

    let source = format!("{}/team/app:v1", upstream.host);
    let done = imagehub(
        home.path(),
        &["import", &source, "--to", "acme/app:stable", "--registry", &host],
        "",
        None,
    );
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(done.stdout.contains(&format!("as acme/app:stable ({digest})")), "{}", done.stdout);
    assert!(
        done.stderr.contains("acme/app:stable: succeeded"),
        "plain lines off a terminal: {}",
        done.stderr
    );
    assert!(
        !done.stderr.contains('\u{1b}') && !done.stderr.contains("ETA"),
        "no progress bar off a terminal: {}",
        done.stderr
    );

    let quiet = imagehub(
        home.path(),
        &["import", &source, "--to", "acme/app:stable", "--registry", &host, "-q"],
        "",
        None,
    );
    assert_eq!((quiet.code, quiet.stderr.as_str()), (0, ""), "{}", quiet.stderr);
    assert!(quiet.stdout.contains("unchanged: nothing pulled"), "{}", quiet.stdout);
    let missing = format!("{}/team/app:nosuch", upstream.host);
    let failed = imagehub(
        home.path(),
        &["import", &missing, "--to", "acme", "--registry", &host, "-q"],
        "",
        None,
    );
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.contains("not found upstream"), "the job's reason: {}", failed.stderr);
    let detached = imagehub(
        home.path(),
        &["import", &source, "--to", "acme/other", "--registry", &host, "--detach", "--json"],
        "",
        None,
    );
    assert_eq!(detached.code, 0, "{}", detached.stderr);
    let job: Value = serde_json::from_str(&detached.stdout).expect("the job as JSON");
    assert!(job["url"].as_str().is_some_and(|u| u.starts_with("/api/v1/imports/")), "{job}");
    let refused = imagehub(
        tempfile::tempdir().expect("home").path(),
        &["import", &source, "--to", "acme", "--registry", &host],
        "",
        None,
    );
    assert_eq!(refused.code, 4, "without credentials: {}", refused.stderr);
}

#[tokio::test]
async fn apply_export_orgs_and_tokens_from_the_command_line() {
    let (_hub, host) = hub_with_private_image().await;
    let home = tempfile::tempdir().expect("home");
    let login = imagehub(
        home.path(),
        &["login", &host, "-u", "olga", "--password-stdin"],
        "olga-password-1\n",
        None,
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    let on = ["--registry", host.as_str()];
    let run = |args: &[&str], stdin: &str| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(on);
        imagehub(home.path(), &all, stdin, None)
    };

    let created = run(&["org", "create", "acme", "--public", "--description", "Our team"], "");
    assert_eq!(created.code, 0, "{}", created.stderr);
    let listed = run(&["org", "ls"], "");
    assert!(listed.stdout.contains("acme") && listed.stdout.contains("owner"), "{}", listed.stdout);
    hub_user(&host, "bob").await;
    assert_eq!(run(&["org", "add", "acme", "bob", "--role", "viewer"], "").code, 0);
    let members = run(&["org", "members", "acme", "--json"], "");
    let members: Value = serde_json::from_str(&members.stdout).expect("JSON");
    assert_eq!(members["members"].as_array().map(Vec::len), Some(2), "{members}");

    let dir = home.path().join("manifests");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("a.yaml"), "apiVersion: imagehub.sealos.io/v1\nkind: Image\nspec:\n  name: acme/tool:v1\n  detail:\n    description: A tool\n").expect("write");
    std::fs::write(dir.join("b.yml"), "apiVersion: imagehub.sealos.io/v1\nkind: Repository\nspec:\n  name: olga/private\n  visibility: private\n").expect("write");
    let applied = run(&["apply", "-f", dir.to_str().expect("path")], "");
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(applied.stdout.contains("Image acme/tool:v1 configured"), "{}", applied.stdout);
    let exported = run(&["export", "--kind", "Image", "--org", "acme"], "");
    assert!(
        exported.stdout.contains("acme/tool:v1") && exported.stdout.contains("A tool"),
        "{}",
        exported.stdout
    );
    let again = run(&["apply", "-f", "-"], &exported.stdout);
    assert!(
        again.stdout.contains("unchanged"),
        "applying an export changes nothing: {}",
        again.stdout
    );
    let bad = run(&["apply", "-f", "-"], "apiVersion: nope\nkind: Image\nspec: {}\n");
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("apiVersion"), "the server's message: {}", bad.stderr);

    let token = run(&["token", "create", "ci", "--scope", "pull,push", "--namespace", "acme"], "");
    assert_eq!(token.code, 0, "{}", token.stderr);
    let secret = token.stdout.trim().to_string();
    assert!(secret.starts_with("ihp_"), "{secret}");
    let tokens = run(&["token", "ls", "--json"], "");
    let tokens: Value = serde_json::from_str(&tokens.stdout).expect("JSON");
    let id = tokens["tokens"][0]["id"].as_i64().expect("an id");
    // The token logs in, as a password does.
    let other = tempfile::tempdir().expect("home");
    let login = imagehub(
        other.path(),
        &["login", &host, "-u", "olga", "--password-stdin"],
        &format!("{secret}\n"),
        None,
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert_eq!(run(&["token", "revoke", &id.to_string()], "").code, 0);
    assert_eq!(run(&["token", "revoke", &id.to_string()], "").code, 3, "gone");
}

/// Creates user `name` on the hub at `host` as the admin.
async fn hub_user(host: &str, name: &str) {
    let client = reqwest::Client::new();
    let created = client
        .post(format!("http://{host}/api/v1/users"))
        .basic_auth("admin", Some(imagehub_testkit::ADMIN_PASSWORD))
        .json(&serde_json::json!({"name": name, "password": format!("{name}-password-1")}))
        .send()
        .await
        .expect("create a user");
    assert_eq!(created.status(), 201);
}

#[tokio::test]
async fn copy_mounts_within_a_registry_and_keeps_every_digest_between_two() {
    let (_hub, host) = hub_with_private_image().await;
    let home = tempfile::tempdir().expect("home");
    let login = imagehub(
        home.path(),
        &["login", &host, "-u", "olga", "--password-stdin"],
        "olga-password-1\n",
        None,
    );
    assert_eq!(login.code, 0, "{}", login.stderr);

    let within = imagehub(
        home.path(),
        &["copy", &format!("{host}/olga/private:v1"), &format!("{host}/olga/copy"), "--json"],
        "",
        None,
    );
    assert_eq!(within.code, 0, "{}", within.stderr);
    let report: Value = serde_json::from_str(&within.stdout).expect("JSON");
    assert_eq!(
        (report["mounted"].as_u64(), report["uploaded"].as_u64()),
        (Some(2), Some(0)),
        "mounted, not uploaded: {report}"
    );
    let again = imagehub(
        home.path(),
        &["copy", &format!("{host}/olga/private:v1"), &format!("{host}/olga/copy:v1"), "--json"],
        "",
        None,
    );
    let report: Value = serde_json::from_str(&again.stdout).expect("JSON");
    assert_eq!(report["skipped"].as_u64(), Some(2), "already there: {report}");

    // An index from distribution into the hub and back out to a second distribution.
    let dir = tempfile::tempdir().expect("dir");
    let upstream = crate::support::distribution::Distribution::start(&dir.path().join("one"), None);
    let (index, digest, children) = crate::imports::push_index(
        &crate::support::registry::Registry::at(&upstream.url()),
        "team/multi",
        "v2",
    )
    .await;
    let into = imagehub(
        home.path(),
        &[
            "copy",
            &format!("{}/team/multi:v2", upstream.host),
            &format!("{host}/olga/multi"),
            "--json",
        ],
        "",
        None,
    );
    assert_eq!(into.code, 0, "{}", into.stderr);
    let report: Value = serde_json::from_str(&into.stdout).expect("JSON");
    assert_eq!(
        (report["digest"].as_str(), report["manifests"].as_u64()),
        (Some(digest.as_str()), Some(3)),
        "{report}"
    );
    // The hub's copy is private: it is read back by copying it on to a second registry.
    let second = crate::support::distribution::Distribution::start(&dir.path().join("two"), None);
    let out = imagehub(
        home.path(),
        &[
            "copy",
            &format!("{host}/olga/multi:v2"),
            &format!("{}/mirror/multi:v2", second.host),
            "-q",
        ],
        "",
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mirrored = crate::support::registry::Registry::at(&second.url());
    assert_eq!(
        mirrored.get_manifest("mirror/multi", "v2").await.body,
        index,
        "the index, byte for byte"
    );
    for child in children {
        mirrored
            .get_manifest("mirror/multi", &child)
            .await
            .expect_status(200, "every platform, by digest");
    }
}

/// skopeo, with its own empty home, as the test's other client.
pub(crate) fn skopeo(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("skopeo").args(args).env("HOME", home).output().expect("run skopeo")
}

/// The digest of the manifest `index.json` of the layout in `dir` names first.
fn layout_digest(dir: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("JSON");
    index["manifests"][0]["digest"].as_str().expect("a digest").to_string()
}

#[tokio::test]
async fn push_and_pull_oci_layouts_interchange_with_skopeo_byte_for_byte() {
    let (hub, host) = hub_with_private_image().await;
    let olga = Cred::basic("olga", "olga-password-1");
    let original = hub
        .api(&olga, reqwest::Method::GET, "/api/v1/orgs/olga/repos/private/images/v1", None)
        .await
        .json();
    let digest = original["digest"].as_str().expect("digest").to_string();
    let home = tempfile::tempdir().expect("home");
    let login = imagehub(
        home.path(),
        &["login", &host, "-u", "olga", "--password-stdin"],
        "olga-password-1\n",
        None,
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    let creds = "olga:olga-password-1";

    // imagehub pull → a layout skopeo reads back with the same digest.
    let ours = home.path().join("ours");
    let pulled = imagehub(
        home.path(),
        &[
            "pull",
            &format!("{host}/olga/private:v1"),
            "--output",
            &format!("oci:{}:v1", ours.display()),
        ],
        "",
        None,
    );
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    assert_eq!(layout_digest(&ours), digest);
    let copied = home.path().join("copied");
    let out = skopeo(
        home.path(),
        &[
            "copy",
            "--all",
            "--preserve-digests",
            &format!("oci:{}:v1", ours.display()),
            &format!("oci:{}:v1", copied.display()),
        ],
    );
    assert!(
        out.status.success(),
        "skopeo reads our layout: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layout_digest(&copied), digest);

    // skopeo's layout → imagehub push, with a README and details → skopeo pulls it back.
    let theirs = home.path().join("theirs");
    let out = skopeo(
        home.path(),
        &[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--src-creds",
            creds,
            &format!("docker://{host}/olga/private:v1"),
            &format!("oci:{}:v1", theirs.display()),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let readme = home.path().join("README.md");
    std::fs::write(&readme, "# Pushed\n\nWith a README given at push.\n").expect("README");
    let pushed = imagehub(
        home.path(),
        &[
            "push",
            &format!("oci:{}:v1", theirs.display()),
            &format!("{host}/olga/pushed:v2"),
            "-o",
            readme.to_str().expect("path"),
            "--keyword",
            "cli",
            "--description",
            "Pushed by the CLI",
        ],
        "",
        None,
    );
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    assert!(pushed.stdout.contains(&digest), "{}", pushed.stdout);
    let back = home.path().join("back");
    let out = skopeo(
        home.path(),
        &[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--src-creds",
            creds,
            &format!("docker://{host}/olga/pushed:v2"),
            &format!("oci:{}:v2", back.display()),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(layout_digest(&back), digest, "byte for byte through both tools");
    let image = hub
        .api(&olga, reqwest::Method::GET, "/api/v1/orgs/olga/repos/pushed/images/v2", None)
        .await
        .json();
    assert_eq!(image["details"]["description"], "Pushed by the CLI", "{image}");
    assert!(
        image["details"]["docs"]
            .as_str()
            .is_some_and(|d| d.contains("With a README given at push")),
        "{image}"
    );
    assert_eq!(image["details"]["keywords"], serde_json::json!(["cli"]), "{image}");
    assert_eq!(image["detail_origins"]["docs"], "push_readme", "{image}");
    assert_eq!(image["detail_origins"]["keywords"], "edit", "{image}");
    let inspect = imagehub(home.path(), &["inspect", &format!("{host}/olga/pushed:v2")], "", None);
    assert!(
        inspect.stdout.contains("Description:  Pushed by the CLI  (from an edit on the hub)")
            && inspect.stdout.contains("(from the README given at push)"),
        "where each detail comes from: {}",
        inspect.stdout
    );

    let missing = imagehub(
        home.path(),
        &["push", &format!("oci:{}:nosuch", theirs.display()), &format!("{host}/olga/x:v1")],
        "",
        None,
    );
    assert_eq!(missing.code, 3, "{}", missing.stderr);
    let unknown = imagehub(
        home.path(),
        &["pull", &format!("{host}/olga/pushed:v2"), "--output", "tarball:x.tar"],
        "",
        None,
    );
    assert_eq!(unknown.code, 2, "an unknown format: {}", unknown.stderr);
}

#[tokio::test]
async fn sync_rules_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream =
        crate::support::distribution::Distribution::start(&dir.path().join("storage"), None);
    let registry = crate::support::registry::Registry::at(&upstream.url());
    for tag in ["v1.0.0", "v1.1.0", "latest"] {
        crate::support::registry::push_image(&registry, "team/app", tag, tag).await;
    }
    let insecure = upstream.host.clone();
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![insecure]);
    hub.olga_with_public_acme().await;
    let host = hub.server().host();
    let home = olgas_home(&host);
    let on = ["--registry", host.as_str()];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(on);
        imagehub(home.path(), &all, "", None)
    };
    let source = format!("{}/team/app", upstream.host);
    let created =
        run(&["sync", "create", "acme", &source, "--include", "^v", "--newest", "1", "--json"]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    let rule: Value = serde_json::from_str(&created.stdout).expect("JSON");
    let id = rule["id"].to_string();
    let ran = run(&["sync", "run", &id]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("v1.1.0") && !ran.stdout.contains("latest"), "{}", ran.stdout);
    let listed = run(&["sync", "ls", "acme"]);
    assert!(
        listed.stdout.contains("team/app") && listed.stdout.contains("acme/app"),
        "{}",
        listed.stdout
    );
    let bad = run(&["sync", "create", "acme", &source, "--include", "("]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("include"), "{}", bad.stderr);
    assert_eq!(run(&["sync", "rm", &id]).code, 0);
    assert_eq!(run(&["sync", "runs", &id]).code, 3, "gone");
}

#[tokio::test]
async fn oci_archives_go_both_ways_with_skopeo() {
    let (hub, host) = hub_with_private_image().await;
    let olga = Cred::basic("olga", "olga-password-1");
    let digest = hub
        .api(&olga, reqwest::Method::GET, "/api/v1/orgs/olga/repos/private/images/v1", None)
        .await
        .json()["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let home = olgas_home(&host);

    let ours = home.path().join("ours.tar");
    let pulled = imagehub(
        home.path(),
        &[
            "pull",
            &format!("{host}/olga/private:v1"),
            "--output",
            &format!("oci-archive:{}:v1", ours.display()),
        ],
        "",
        None,
    );
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    let unpacked = home.path().join("unpacked");
    let out = skopeo(
        home.path(),
        &[
            "copy",
            "--preserve-digests",
            &format!("oci-archive:{}:v1", ours.display()),
            &format!("oci:{}:v1", unpacked.display()),
        ],
    );
    assert!(
        out.status.success(),
        "skopeo reads our archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layout_digest(&unpacked), digest);

    let theirs = home.path().join("theirs.tar");
    let out = skopeo(
        home.path(),
        &[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--src-creds",
            "olga:olga-password-1",
            &format!("docker://{host}/olga/private:v1"),
            &format!("oci-archive:{}:v1", theirs.display()),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pushed = imagehub(
        home.path(),
        &[
            "push",
            &format!("oci-archive:{}:v1", theirs.display()),
            &format!("{host}/olga/from-archive:v1"),
        ],
        "",
        None,
    );
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    assert!(pushed.stdout.contains(&digest), "{}", pushed.stdout);
    let broken = home.path().join("broken.tar");
    std::fs::write(&broken, b"not a tar archive at all").expect("write");
    let refused = imagehub(
        home.path(),
        &["push", &format!("oci-archive:{}", broken.display()), &format!("{host}/olga/x:v1")],
        "",
        None,
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
}

#[tokio::test]
async fn docker_archives_go_both_ways_with_skopeo() {
    let (_hub, host) = hub_with_private_image().await;
    let home = olgas_home(&host);
    let creds = "olga:olga-password-1";

    // skopeo's docker archive → imagehub push → skopeo sees the same layers.
    let saved = home.path().join("saved.tar");
    let out = skopeo(
        home.path(),
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            creds,
            &format!("docker://{host}/olga/private:v1"),
            &format!("docker-archive:{}:olga/private:v1", saved.display()),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pushed = imagehub(
        home.path(),
        &[
            "push",
            &format!("docker-archive:{}", saved.display()),
            &format!("{host}/olga/loaded:v1"),
        ],
        "",
        None,
    );
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    let inspect = |image: &str| -> Value {
        let out = skopeo(home.path(), &["inspect", "--tls-verify=false", "--creds", creds, image]);
        assert!(out.status.success(), "{image}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let original = inspect(&format!("docker://{host}/olga/private:v1"));
    let loaded = inspect(&format!("docker://{host}/olga/loaded:v1"));
    assert_eq!(loaded["Layers"], original["Layers"], "the same layers");

    // imagehub pull into a docker archive → skopeo reads it (an image whose config has
    // the rootfs docker archives need).
    let dir = tempfile::tempdir().expect("dir");
    let upstream =
        crate::support::distribution::Distribution::start(&dir.path().join("storage"), None);
    let registry = crate::support::registry::Registry::at(&upstream.url());
    let layer = crate::realclients::tar(&[("hello.txt", b"hello")]);
    let layer_digest = crate::support::registry::sha256_digest(&layer);
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer_digest]}});
    let config = serde_json::to_vec(&config).expect("config");
    registry.push_blob("team/app", &config).await;
    registry.push_blob("team/app", &layer).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": crate::support::registry::descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [crate::support::registry::descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    });
    let manifest = serde_json::to_vec(&manifest).expect("manifest");
    registry
        .push_manifest("team/app", "v1", "application/vnd.oci.image.manifest.v1+json", &manifest)
        .await;
    let ours = home.path().join("ours.tar");
    let pulled = imagehub(
        home.path(),
        &[
            "pull",
            &format!("{}/team/app:v1", upstream.host),
            "--output",
            &format!("docker-archive:{}", ours.display()),
        ],
        "",
        None,
    );
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    let read = inspect(&format!("docker-archive:{}", ours.display()));
    assert_eq!(read["Layers"], serde_json::json!([layer_digest]), "{read}");
    let missing = imagehub(
        home.path(),
        &[
            "push",
            &format!("docker-archive:{}:nosuch/image:v9", saved.display()),
            &format!("{host}/olga/x:v1"),
        ],
        "",
        None,
    );
    assert_eq!(missing.code, 3, "{}", missing.stderr);
}

#[tokio::test]
async fn credentials_are_shared_with_podman_and_skopeo_both_ways() {
    let (_hub, host) = hub_with_private_image().await;
    let home = tempfile::tempdir().expect("home");
    // imagehub login → skopeo uses what it kept (docker's config.json).
    let login = imagehub(
        home.path(),
        &["login", &host, "-u", "olga", "--password-stdin"],
        "olga-password-1\n",
        None,
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{host}/olga/private:v1")])
        .env("HOME", home.path())
        .env("DOCKER_CONFIG", home.path().join(".docker"))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("REGISTRY_AUTH_FILE")
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo with imagehub's login: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // podman login → imagehub push without logging in again.
    let fresh = tempfile::tempdir().expect("another home");
    let auth_file = fresh.path().join("auth.json");
    let podman = Command::new("podman")
        .args(["login", "--tls-verify=false", "--authfile"])
        .arg(&auth_file)
        .args(["-u", "olga", "-p", "olga-password-1", &host])
        .env("HOME", fresh.path())
        .output()
        .expect("podman login");
    assert!(podman.status.success(), "{}", String::from_utf8_lossy(&podman.stderr));
    let layout = fresh.path().join("layout");
    let pulled = imagehub(
        fresh.path(),
        &[
            "pull",
            &format!("{host}/olga/private:v1"),
            "--output",
            &format!("oci:{}:v1", layout.display()),
        ],
        "",
        None,
    );
    assert_eq!(pulled.code, 0, "pull with podman's login: {}", pulled.stderr);
    let pushed = imagehub(
        fresh.path(),
        &["push", &format!("oci:{}:v1", layout.display()), &format!("{host}/olga/via-podman:v1")],
        "",
        None,
    );
    assert_eq!(pushed.code, 0, "push with podman's login: {}", pushed.stderr);
}

#[tokio::test]
async fn transfers_print_a_line_per_blob_off_a_terminal_and_nothing_when_quiet() {
    let (_hub, host) = hub_with_private_image().await;
    let home = olgas_home(&host);
    let layout = home.path().join("layout");
    let output = format!("oci:{}:v1", layout.display());
    let pulled = imagehub(
        home.path(),
        &["pull", &format!("{host}/olga/private:v1"), "--output", &output],
        "",
        None,
    );
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    let lines: Vec<&str> = pulled.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "a line per blob (config and layer): {}", pulled.stderr);
    assert!(
        lines.iter().all(|l| l.starts_with("sha256:") && l.ends_with("downloaded")),
        "{}",
        pulled.stderr
    );
    assert!(!pulled.stderr.contains('\u{1b}'), "no terminal codes: {}", pulled.stderr);
    let target = format!("{host}/olga/again:v1");
    let first = imagehub(home.path(), &["push", &output, &target], "", None);
    assert!(first.stderr.lines().all(|l| l.ends_with("uploaded")), "{}", first.stderr);
    let second = imagehub(home.path(), &["push", &output, &target], "", None);
    assert!(second.stderr.lines().all(|l| l.ends_with("already there")), "{}", second.stderr);
    let quiet =
        imagehub(home.path(), &["push", "-q", &output, &format!("{host}/olga/again:v1")], "", None);
    assert_eq!((quiet.code, quiet.stderr.as_str()), (0, ""), "{}", quiet.stderr);
}

// The proxy serves on the runtime's workers while this thread waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_push_goes_up_in_chunks_and_resumes_after_a_failed_one() {
    let registry = crate::support::registry::Registry::start();
    let proxy = crate::support::proxy::Proxy::start(&registry.server().url()).await;
    let home = tempfile::tempdir().expect("home");
    // A layout of one image with a 40 MiB layer: three chunks of 16 MiB at most.
    let layout = home.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("dirs");
    let blob = |bytes: &[u8]| {
        let digest = crate::support::registry::sha256_digest(bytes);
        std::fs::write(layout.join("blobs/sha256").join(&digest[7..]), bytes).expect("blob");
        digest
    };
    let layer = crate::support::registry::random_bytes(40 << 20, 5);
    let config = crate::support::registry::image_config("chunks");
    let manifest = crate::support::registry::image_manifest(&config, &[&layer]);
    let (layer_digest, _, manifest_digest) = (blob(&layer), blob(&config), blob(&manifest));
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index");
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("marker");

    proxy.fail_patches(1);
    let pushed = imagehub(
        home.path(),
        &["push", &format!("oci:{}:v1", layout.display()), &format!("{}/team/big:v1", proxy.host)],
        "",
        None,
    );
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    assert_eq!(
        proxy.count_prefix("PATCH", "/v2/team/big/blobs/uploads/"),
        4,
        "three chunks, one of them sent again"
    );
    assert_eq!(
        proxy.count_prefix("GET", "/v2/team/big/blobs/uploads/"),
        1,
        "the session asked where it stood once"
    );
    let stored = registry.get(&format!("/v2/team/big/blobs/{layer_digest}")).await;
    assert_eq!(stored.expect_status(200, "the layer").body.len(), 40 << 20);
    registry.get_manifest("team/big", "v1").await.expect_status(200, "the image");
}

// The proxy serves on the runtime's workers while this thread waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_copy_goes_up_in_chunks_and_resumes_after_a_failed_one() {
    let source = crate::support::registry::Registry::start();
    let target = crate::support::registry::Registry::start();
    let proxy = crate::support::proxy::Proxy::start(&target.server().url()).await;
    let home = tempfile::tempdir().expect("home");
    let layer = crate::support::registry::random_bytes(40 << 20, 6);
    let config = crate::support::registry::image_config("copied in chunks");
    let manifest = crate::support::registry::image_manifest(&config, &[&layer]);
    let layer_digest = source.push_blob("team/big", &layer).await;
    source.push_blob("team/big", &config).await;
    source
        .push_manifest("team/big", "v1", "application/vnd.oci.image.manifest.v1+json", &manifest)
        .await;

    proxy.fail_patches(1);
    let copied = imagehub(
        home.path(),
        &[
            "copy",
            &format!("{}/team/big:v1", source.server().host()),
            &format!("{}/team/big:v1", proxy.host),
        ],
        "",
        None,
    );
    assert_eq!(copied.code, 0, "{}", copied.stderr);
    assert_eq!(
        proxy.count_prefix("PATCH", "/v2/team/big/blobs/uploads/"),
        4,
        "three chunks, one of them sent again"
    );
    assert_eq!(proxy.count_prefix("GET", "/v2/team/big/blobs/uploads/"), 1);
    let stored = target.get(&format!("/v2/team/big/blobs/{layer_digest}")).await;
    assert_eq!(stored.expect_status(200, "the layer").body.len(), 40 << 20);
    let copied = target.get_manifest("team/big", "v1").await;
    assert_eq!(copied.expect_status(200, "the image").body, manifest, "byte for byte");
}

#[tokio::test]
async fn on_a_terminal_each_blob_has_a_bar_above_the_total() {
    let (_hub, host) = hub_with_private_image().await;
    let home = olgas_home(&host);
    // `script` (util-linux) runs the pull on a pseudo-terminal and keeps what it drew.
    let layout = home.path().join("layout");
    let command = format!(
        "{} pull {host}/olga/private:v1 --output oci:{}:v1",
        imagehub_bin(),
        layout.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("HOME", home.path())
        .env("DOCKER_CONFIG", home.path().join(".docker"))
        .env("REGISTRY_AUTH_FILE", home.path().join("auth.json"))
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{drawn}");
    assert!(drawn.contains('\u{1b}'), "drawn with terminal codes: {drawn}");
    assert!(
        drawn.lines().any(|l| l.contains("sha256:") && l.contains(" [")),
        "a bar per blob: {drawn}"
    );
    assert!(drawn.contains("total "), "and one in total: {drawn}");
    assert!(drawn.contains("Pulled "), "{drawn}");
}
