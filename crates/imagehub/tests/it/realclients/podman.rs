//! podman: build a `FROM scratch` image (COPY + LABEL), push it to imagehub, remove it
//! locally, pull it back and check it with `podman image inspect`.

use std::path::Path;

use imagehub_testkit::TestServer;
use serde_json::json;

use super::{Clients, digest, parse_json, read_digest_file, str_at, write};

const NOTE: &str = "built by podman for the imagehub real-client tests\n";

#[test]
fn podman_build_push_rmi_pull() {
    let server = TestServer::start();
    let c = Clients::new(&server.host());
    let policy = c.policy();
    let image = format!("{}/podman/app:v1", c.host());

    let context = c.path("context");
    std::fs::create_dir_all(&context).expect("create build context");
    write(Path::new(&context).join("note.txt"), NOTE);
    write(
        Path::new(&context).join("Containerfile"),
        "FROM scratch\nCOPY note.txt /note.txt\nLABEL org.opencontainers.image.title=\"podman-test\"\n",
    );

    c.run(
        "podman",
        &[
            "build",
            "--isolation",
            "chroot",
            "--no-cache",
            "--signature-policy",
            &policy,
            "-t",
            "localhost/podman-test:v1",
            &context,
        ],
    );
    let digest_file = c.path("push.digest");
    c.run(
        "podman",
        &[
            "push",
            "--tls-verify=false",
            "--signature-policy",
            &policy,
            "--digestfile",
            &digest_file,
            "localhost/podman-test:v1",
            &format!("docker://{image}"),
        ],
    );
    let pushed = read_digest_file(&digest_file);
    assert_eq!(digest(&c.skopeo_raw_manifest("podman/app:v1")), pushed);

    // Remove the local image, so that the pull fetches everything from imagehub.
    c.run("podman", &["rmi", "localhost/podman-test:v1"]);
    assert_eq!(
        parse_json(&c.run("podman", &["images", "--format", "json"])),
        json!([]),
        "images left after rmi"
    );

    c.run(
        "podman",
        &[
            "pull",
            "--tls-verify=false",
            "--signature-policy",
            &policy,
            &image,
        ],
    );
    let inspect = parse_json(&c.run("podman", &["image", "inspect", &image]));
    let info = &inspect[0];
    assert_eq!(str_at(info, "/Digest"), pushed, "{info:#}");
    assert_eq!(
        str_at(info, "/Labels/org.opencontainers.image.title"),
        "podman-test",
        "{info:#}"
    );
    let repo_digest = format!("{}/podman/app@{pushed}", c.host());
    assert!(
        info["RepoDigests"]
            .as_array()
            .is_some_and(|d| d.contains(&json!(repo_digest))),
        "RepoDigests lack {repo_digest}: {info:#}"
    );
    assert_eq!(
        info["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(1),
        "{info:#}"
    );

    // The pulled image holds the copied file.
    let mountpoint = c
        .run("podman", &["image", "mount", &image])
        .stdout_trimmed();
    let note = std::fs::read_to_string(Path::new(&mountpoint).join("note.txt"));
    c.run("podman", &["image", "unmount", &image]);
    assert_eq!(note.expect("read note.txt in the pulled image"), NOTE);
}
