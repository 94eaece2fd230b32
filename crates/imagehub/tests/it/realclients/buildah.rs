//! buildah: build an image `from scratch` (copy a file, set a label), push it to imagehub,
//! and check what the registry serves with skopeo.

use imagehub_testkit::TestServer;

use super::{
    Clients, blob_path, digest, file_in_layer, layout_top_digest, str_at, verify_layout_blobs,
};

const README: &str = "# built by buildah\n\nPushed to imagehub by the real-client tests.\n";

#[test]
fn buildah_build_from_scratch_and_push() {
    let server = TestServer::start();
    let c = Clients::new(&server.host());
    c.buildah_build_scratch(
        "localhost/buildah-test:v1",
        "README.md",
        README,
        &[("org.opencontainers.image.title", "buildah-test")],
    );
    let pushed = c.push_local_image("buildah", "localhost/buildah-test:v1", "buildah/app:v1");

    // The registry serves what buildah pushed.
    assert_eq!(digest(&c.skopeo_raw_manifest("buildah/app:v1")), pushed);
    let info = c.skopeo_inspect("buildah/app:v1");
    assert_eq!(str_at(&info, "/Digest"), pushed, "{info:#}");
    assert_eq!(str_at(&info, "/Labels/org.opencontainers.image.title"), "buildah-test", "{info:#}");
    assert_eq!(str_at(&info, "/Architecture"), "amd64", "{info:#}");
    let layer_digest = str_at(&info, "/Layers/0");
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1), "{info:#}");

    // Its one layer holds the copied file.
    let pulled = c.skopeo_pull("buildah/app:v1", "pulled");
    assert_eq!(layout_top_digest(&pulled), pushed);
    assert_eq!(verify_layout_blobs(&pulled), 3, "manifest, config and one layer");
    assert_eq!(
        String::from_utf8_lossy(&file_in_layer(blob_path(&pulled, layer_digest), "README.md")),
        README
    );
}
