//! The client commands against hostile input: archives that would make a push upload
//! the user's own files or write outside their directory, files too large to read
//! whole, and hubs whose answers carry terminal escape sequences or never end.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{Ran, hub_with_private_image, imagehub, olgas_home};
use crate::support::hub::Cred;
use crate::support::registry::sha256_digest;

/// Appends a regular file to `builder`.
fn file(builder: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, data).expect("append a file");
}

/// Appends a link (symbolic or hard) named `name` to `target`.
fn link(builder: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, target: &Path) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(0);
    header.set_mode(0o644);
    builder.append_link(&mut header, name, target).expect("append a link");
}

/// A `docker save` archive whose layer is whatever `layer` appends.
fn docker_archive(layer: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let manifest =
        json!([{"Config": "config.json", "RepoTags": ["evil/app:v1"], "Layers": ["layer.tar"]}]);
    file(&mut builder, "manifest.json", manifest.to_string().as_bytes());
    file(&mut builder, "config.json", br#"{"architecture":"amd64","os":"linux"}"#);
    layer(&mut builder);
    builder.into_inner().expect("archive")
}

/// `imagehub push oci-archive:FILE TARGET` of the archive `builder` holds.
fn push_oci_archive(home: &Path, builder: tar::Builder<Vec<u8>>, target: &str) -> Ran {
    let archive = home.join("pushed.tar");
    std::fs::write(&archive, builder.into_inner().expect("archive")).expect("archive");
    imagehub(home, &["push", &format!("oci-archive:{}", archive.display()), target], "", None)
}

#[tokio::test]
async fn an_archive_cannot_make_a_push_upload_the_users_own_files() {
    let (hub, host) = hub_with_private_image().await;
    let home = olgas_home(&host);
    let secret = home.path().join("id_ed25519");
    let secret_bytes = b"-----BEGIN OPENSSH PRIVATE KEY----- the user's own key";
    std::fs::write(&secret, secret_bytes).expect("secret");
    let secret_digest = sha256_digest(secret_bytes);

    let cases = [
        (tar::EntryType::Symlink, "symlink", secret.clone()),
        (tar::EntryType::Link, "hardlink", secret.clone()),
        (tar::EntryType::Symlink, "relative", Path::new("../id_ed25519").to_path_buf()),
    ];
    for (kind, name, target) in cases {
        let archive = home.path().join(format!("{name}.tar"));
        std::fs::write(&archive, docker_archive(|b| link(b, kind, "layer.tar", &target)))
            .expect("archive");
        let pushed = imagehub(
            home.path(),
            &[
                "push",
                &format!("docker-archive:{}", archive.display()),
                &format!("{host}/olga/evil:v1"),
            ],
            "",
            None,
        );
        assert_eq!(pushed.code, 1, "{name}: {}", pushed.stderr);
        assert!(
            pushed.stderr.contains("\"layer.tar\" links to")
                && pushed.stderr.contains("outside the archive"),
            "{name}: the refusal names the entry: {}",
            pushed.stderr
        );
        let olga = Cred::basic("olga", "olga-password-1");
        let path = format!("/v2/olga/evil/blobs/{secret_digest}");
        hub.api(&olga, Method::HEAD, &path, None).await.expect_status(404, "the key never left");
    }

    // The same through an OCI archive whose blob is a link.
    let mut builder = tar::Builder::new(Vec::new());
    file(&mut builder, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    link(
        &mut builder,
        tar::EntryType::Symlink,
        &format!("blobs/sha256/{}", &secret_digest[7..]),
        &secret,
    );
    let pushed = push_oci_archive(home.path(), builder, &format!("{host}/olga/evil:v1"));
    assert_eq!(pushed.code, 1, "{}", pushed.stderr);
    assert!(pushed.stderr.contains("outside the archive"), "{}", pushed.stderr);

    // A device is no part of an image.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Char);
    header.set_size(0);
    header.set_cksum();
    builder.append_data(&mut header, "blobs/sha256/tty", std::io::empty()).expect("device");
    let pushed = push_oci_archive(home.path(), builder, &format!("{host}/olga/evil:v1"));
    assert_eq!(pushed.code, 1, "{}", pushed.stderr);
    assert!(pushed.stderr.contains("is a Char entry"), "{}", pushed.stderr);
}

#[tokio::test]
async fn an_archive_cannot_write_outside_its_directory() {
    let home = tempfile::tempdir().expect("home");
    let inner = home.path().join("inner");
    std::fs::create_dir(&inner).expect("dir");
    // `tar::Builder` refuses `..` in names, so the header is written by hand.
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..14].copy_from_slice(b"../escaped.txt");
    header.set_size(5);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(b"owned");
    bytes.resize(bytes.len() + 512 - 5 + 1024, 0);
    let archive = inner.join("evil.tar");
    std::fs::write(&archive, bytes).expect("archive");
    let pushed = imagehub(
        home.path(),
        &["push", &format!("oci-archive:{}", archive.display()), "127.0.0.1:9/x/y:v1"],
        "",
        None,
    );
    assert_eq!(pushed.code, 1, "{}", pushed.stderr);
    assert!(pushed.stderr.contains("outside the archive"), "{}", pushed.stderr);
    assert!(!home.path().join("escaped.txt").exists() && !inner.join("escaped.txt").exists());
    // Nothing was written next to the temporary directory either.
    let temp = std::env::temp_dir().join("escaped.txt");
    assert!(!temp.exists(), "{}", temp.display());
}

#[tokio::test]
async fn huge_json_in_an_archive_or_a_layout_is_refused_unread() {
    let home = tempfile::tempdir().expect("home");
    // manifest.json of 17 MiB (the bound is 16).
    let mut builder = tar::Builder::new(Vec::new());
    let huge = format!("[{{\"Config\": \"{}\"}}]", "a".repeat(17 << 20));
    file(&mut builder, "manifest.json", huge.as_bytes());
    let archive = home.path().join("huge.tar");
    std::fs::write(&archive, builder.into_inner().expect("archive")).expect("archive");
    let pushed = imagehub(
        home.path(),
        &["push", &format!("docker-archive:{}", archive.display()), "127.0.0.1:9/x/y:v1"],
        "",
        None,
    );
    assert_eq!(pushed.code, 1, "{}", pushed.stderr);
    assert!(pushed.stderr.contains("manifest.json: larger than 16 MiB"), "{}", pushed.stderr);

    // A layout whose "manifest" is 5 MiB (registries refuse over 4).
    let layout = home.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("dirs");
    let manifest = vec![b' '; 5 << 20];
    let digest = sha256_digest(&manifest);
    std::fs::write(layout.join("blobs/sha256").join(&digest[7..]), &manifest).expect("blob");
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": manifest.len()}]});
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index");
    let pushed = imagehub(
        home.path(),
        &["push", &format!("oci:{}", layout.display()), "127.0.0.1:9/x/y:v1"],
        "",
        None,
    );
    assert_eq!(pushed.code, 1, "{}", pushed.stderr);
    assert!(pushed.stderr.contains("larger than 4 MiB"), "{}", pushed.stderr);
}

#[tokio::test]
async fn what_a_hub_says_cannot_drive_the_terminal() {
    let (hub, host) = hub_with_private_image().await;
    let home = olgas_home(&host);
    // A description that would retitle the window and clear the screen.
    let hostile = "tidy\u{1b}]0;pwned\u{7}\u{1b}[2J image";
    let olga = Cred::basic("olga", "olga-password-1");
    hub.api(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/olga/repos/private/images/v1",
        Some(json!({"description": hostile})),
    )
    .await
    .expect_status(200, "a description with escapes");

    let search = imagehub(home.path(), &["search", "private", "--registry", &host], "", None);
    assert_eq!(search.code, 0, "{}", search.stderr);
    assert!(search.stdout.contains("tidy\\u{1b}]0;pwned"), "shown escaped: {}", search.stdout);
    assert!(!search.stdout.contains('\u{1b}') && !search.stdout.contains('\u{7}'));
    let inspect = imagehub(home.path(), &["inspect", &format!("{host}/olga/private:v1")], "", None);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    assert!(!inspect.stdout.contains('\u{1b}'), "{}", inspect.stdout);
    assert!(inspect.stdout.contains("\\u{1b}[2J"), "{}", inspect.stdout);
    // Scripts get the value as it is, escaped by JSON.
    let json =
        imagehub(home.path(), &["search", "private", "--json", "--registry", &host], "", None);
    let found: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(found["results"][0]["description"], hostile);
}

/// A hub at a loopback address answering every request with `body` and `status`.
async fn fake_hub(status: u16, body: Vec<u8>) -> String {
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { (axum::http::StatusCode::from_u16(status).expect("status"), body) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    host
}

// The fake hub serves on the runtime's workers while this thread waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubs_errors_are_escaped_and_its_answers_bounded() {
    let home = tempfile::tempdir().expect("home");
    let error =
        json!({"errors": [{"code": "DENIED", "message": "no\u{1b}[31m red\nhint: run rm -rf ~"}]});
    let host = fake_hub(403, error.to_string().into_bytes()).await;
    let search = imagehub(home.path(), &["search", "x", "--registry", &host], "", None);
    assert_eq!(search.code, 4, "{}", search.stderr);
    assert!(!search.stderr.contains('\u{1b}'), "{}", search.stderr);
    assert!(
        search.stderr.lines().filter(|l| l.starts_with("hint:")).count() == 1,
        "the hub's text cannot add a line of its own: {}",
        search.stderr
    );

    let host = fake_hub(200, vec![b' '; 20 << 20]).await;
    let search = imagehub(home.path(), &["search", "x", "--registry", &host], "", None);
    assert_eq!(search.code, 1, "{}", search.stderr);
    assert!(search.stderr.contains("over 16 MiB"), "{}", search.stderr);
}

// The proxy serves on the runtime's workers while this thread waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_killed_midway_leaves_no_image_and_the_next_one_completes() {
    let registry = crate::support::registry::Registry::start();
    let proxy = crate::support::proxy::Proxy::start(&registry.server().url()).await;
    let home = tempfile::tempdir().expect("home");
    let (first, second) = (b"the first layer".to_vec(), b"the second layer".to_vec());
    let config = crate::support::registry::image_config("killed midway");
    let manifest = crate::support::registry::image_manifest(&config, &[&first, &second]);
    registry.push_blob("team/app", &first).await;
    let held = registry.push_blob("team/app", &second).await;
    registry.push_blob("team/app", &config).await;
    registry
        .push_manifest("team/app", "v1", "application/vnd.oci.image.manifest.v1+json", &manifest)
        .await;

    let layout = home.path().join("layout");
    let output = format!("oci:{}:v1", layout.display());
    let image = format!("{}/team/app:v1", proxy.host);
    proxy.hold(&format!("/v2/team/app/blobs/{held}"));
    let mut pulling = std::process::Command::new(crate::process::imagehub_bin())
        .args(["pull", &image, "--output", &output])
        .env("HOME", home.path())
        .env("DOCKER_CONFIG", home.path().join(".docker"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run imagehub");
    proxy.reached().await;
    pulling.kill().expect("kill the pull");
    pulling.wait().expect("reap it");
    assert!(!layout.join("index.json").exists(), "no image is named in a half layout");
    assert!(!layout.join("blobs/sha256").join(&held[7..]).exists(), "nor the missing blob");
    let pushed =
        imagehub(home.path(), &["push", &output, &format!("{}/team/x:v1", proxy.host)], "", None);
    assert_eq!(pushed.code, 3, "the half layout holds no image: {}", pushed.stderr);

    proxy.release();
    let again = imagehub(home.path(), &["pull", &image, "--output", &output], "", None);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
            .expect("JSON");
    let digest = crate::support::registry::sha256_digest(&manifest);
    assert_eq!(index["manifests"][0]["digest"], digest.as_str(), "{index}");
    let stored = std::fs::read(layout.join("blobs/sha256").join(&held[7..])).expect("blob");
    assert_eq!(stored, second);
}

#[tokio::test]
async fn a_user_without_rights_is_refused_in_words_and_changes_nothing() {
    let (hub, host) = hub_with_private_image().await;
    hub.create_user("bob", "bob-password-1").await;
    let olgas = olgas_home(&host);
    let layout = format!("oci:{}:v1", olgas.path().join("layout").display());
    let pulled = imagehub(
        olgas.path(),
        &["pull", &format!("{host}/olga/private:v1"), "--output", &layout],
        "",
        None,
    );
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    let bobs = tempfile::tempdir().expect("home");
    let login = imagehub(
        bobs.path(),
        &["login", &host, "-u", "bob", "--password-stdin"],
        "bob-password-1\n",
        None,
    );
    assert_eq!(login.code, 0, "{}", login.stderr);

    let pushed = imagehub(bobs.path(), &["push", &layout, &format!("{host}/olga/x:v1")], "", None);
    assert_eq!(pushed.code, 4, "{}", pushed.stderr);
    assert!(
        pushed.stderr.contains("accepted the credentials but denies them this on olga/x")
            && pushed.stderr.contains("hint: the account lacks the right"),
        "not a login problem, a missing right: {}",
        pushed.stderr
    );
    let copied = imagehub(
        bobs.path(),
        &["copy", &format!("{host}/olga/private:v1"), &format!("{host}/bob/mine:v1")],
        "",
        None,
    );
    assert_eq!(copied.code, 3, "olga's private image is not there for bob: {}", copied.stderr);
    // A write bob may not make is refused alike whether or not the image exists.
    let removed = imagehub(bobs.path(), &["rm", &format!("{host}/olga/private:v1")], "", None);
    let missing = imagehub(bobs.path(), &["rm", &format!("{host}/olga/nothing:v1")], "", None);
    assert_eq!(removed.code, 4, "{}", removed.stderr);
    assert!(removed.stderr.contains("hint: the account lacks the right"), "{}", removed.stderr);
    assert_eq!(
        removed.stderr.replace("private", "nothing"),
        missing.stderr,
        "the refusal does not tell whether the image exists"
    );
    let olga = Cred::basic("olga", "olga-password-1");
    let still =
        hub.api(&olga, Method::GET, "/api/v1/orgs/olga/repos/private/images/v1", None).await;
    still.expect_status(200, "olga's image is still there");
    let none = hub.api(&olga, Method::GET, "/api/v1/orgs/olga/repos/x/images/v1", None).await;
    none.expect_status(404, "nothing was pushed for bob");
}
