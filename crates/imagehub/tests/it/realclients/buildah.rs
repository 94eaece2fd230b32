//! buildah: build an image `from scratch` (copy a file, set a label), push it to imagehub,
//! and check what the registry serves with skopeo.

use imagehub_testkit::TestServer;

use super::{
    Clients, blob_path, digest, file_in_layer, layout_top_digest, read_digest_file, str_at,
    verify_layout_blobs, write,
};

const README: &str = "# built by buildah\n\nPushed to imagehub by the real-client tests.\n";

#[test]
fn buildah_build_from_scratch_and_push() {
    let server = TestServer::start();
    let c = Clients::new(&server.host());
    let policy = c.policy();
    let readme = c.path("README.md");
    write(&readme, README);

    let container = c
        .run(
            "buildah",
            &["from", "--signature-policy", &policy, "scratch"],
        )
        .stdout_trimmed();
    c.run("buildah", &["copy", &container, &readme, "/README.md"]);
    c.run(
        "buildah",
        &[
            "config",
            "--label",
            "org.opencontainers.image.title=buildah-test",
            "--os",
            "linux",
            "--arch",
            "amd64",
            &container,
        ],
    );
    c.run(
        "buildah",
        &[
            "commit",
            "--rm",
            "--signature-policy",
            &policy,
            &container,
            "localhost/buildah-test:v1",
        ],
    );
    let digest_file = c.path("push.digest");
    c.run(
        "buildah",
        &[
            "push",
            "--tls-verify=false",
            "--signature-policy",
            &policy,
            "--digestfile",
            &digest_file,
            "localhost/buildah-test:v1",
            &c.docker("buildah/app:v1"),
        ],
    );
    let pushed = read_digest_file(&digest_file);

    // The registry serves what buildah pushed.
    assert_eq!(digest(&c.skopeo_raw_manifest("buildah/app:v1")), pushed);
    let info = c.skopeo_inspect("buildah/app:v1");
    assert_eq!(str_at(&info, "/Digest"), pushed, "{info:#}");
    assert_eq!(
        str_at(&info, "/Labels/org.opencontainers.image.title"),
        "buildah-test",
        "{info:#}"
    );
    assert_eq!(str_at(&info, "/Architecture"), "amd64", "{info:#}");
    let layer_digest = str_at(&info, "/Layers/0");
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1), "{info:#}");

    // Its one layer holds the copied file.
    let pulled = c.path("pulled");
    c.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        &c.docker("buildah/app:v1"),
        &format!("oci:{pulled}:v1"),
    ]);
    assert_eq!(layout_top_digest(&pulled), pushed);
    assert_eq!(
        verify_layout_blobs(&pulled),
        3,
        "manifest, config and one layer"
    );
    assert_eq!(
        String::from_utf8_lossy(&file_in_layer(
            blob_path(&pulled, layer_digest),
            "README.md"
        )),
        README
    );
}
