//! podman: build a `FROM scratch` image (COPY + LABEL), push it to imagehub, remove it
//! locally, pull it back and check it with `podman image inspect`.

use std::path::Path;

use imagehub_testkit::TestServer;
use serde_json::json;

use super::{Clients, digest, parse_json, str_at};

const NOTE: &str = "built by podman for the imagehub real-client tests\n";

#[test]
fn podman_build_push_rmi_pull() {
    let server = TestServer::start();
    let c = Clients::new(&server.host());
    let image = format!("{}/podman/app:v1", c.host());

    c.podman_build_scratch(
        "localhost/podman-test:v1",
        "note.txt",
        NOTE,
        &[("org.opencontainers.image.title", "podman-test")],
    );
    let pushed = c.push_local_image("podman", "localhost/podman-test:v1", "podman/app:v1");
    assert_eq!(digest(&c.skopeo_raw_manifest("podman/app:v1")), pushed);

    // Remove the local image, so that the pull fetches everything from imagehub.
    c.run("podman", &["rmi", "localhost/podman-test:v1"]);
    assert_eq!(
        parse_json(&c.run("podman", &["images", "--format", "json"])),
        json!([]),
        "images left after rmi"
    );

    c.podman_pull("podman/app:v1");
    let info = &c.podman_inspect(&image);
    assert_eq!(str_at(info, "/Digest"), pushed, "{info:#}");
    assert_eq!(str_at(info, "/Labels/org.opencontainers.image.title"), "podman-test", "{info:#}");
    let repo_digest = format!("{}/podman/app@{pushed}", c.host());
    assert!(
        info["RepoDigests"].as_array().is_some_and(|d| d.contains(&json!(repo_digest))),
        "RepoDigests lack {repo_digest}: {info:#}"
    );
    assert_eq!(info["RootFS"]["Layers"].as_array().map(Vec::len), Some(1), "{info:#}");

    // The pulled image holds the copied file.
    let mountpoint = c.run("podman", &["image", "mount", &image]).stdout_trimmed();
    let note = std::fs::read_to_string(Path::new(&mountpoint).join("note.txt"));
    c.run("podman", &["image", "unmount", &image]);
    assert_eq!(note.expect("read note.txt in the pulled image"), NOTE);
}
