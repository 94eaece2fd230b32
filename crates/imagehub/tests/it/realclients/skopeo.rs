//! skopeo: push a hand-written OCI layout, inspect it, copy it registry-to-registry across
//! repositories (cross-repo blob mount), pull it back as `oci:` and `docker-archive:` (and push that archive in again), and
//! round-trip a multi-arch index with `--all`.

use imagehub_testkit::TestServer;
use serde_json::{Value, json};

use super::{
    Clients, MT_INDEX, MT_MANIFEST, OciLayout, blob_path, digest, file_in_layer, layout_top_digest,
    parse_json, read, str_at, verify_layout_blobs,
};

const README: &str = "# imagehub realclients\n\nA test image written by hand as an OCI layout.\n";

#[test]
fn skopeo_push_inspect_copy_across_repos_and_pull() {
    let server = TestServer::start();
    let c = Clients::new(&server.host());
    let host = c.host();

    let layout = OciLayout::create(c.path("src"));
    let image = layout.image(
        "amd64",
        &[("README.md", README.as_bytes()), ("hello.txt", b"hello from skopeo\n")],
        json!({ "org.opencontainers.image.description": "skopeo test image" }),
    );
    layout.tag(&image.manifest, "v1");
    let manifest_digest = str_at(&image.manifest, "/digest");

    // Push. --preserve-digests keeps the uncompressed layer as it is, so the registry
    // must end up with exactly our manifest.
    let src = format!("oci:{}:v1", layout.dir.display());
    assert_eq!(c.skopeo_push(&src, "skopeo/src:v1"), manifest_digest);

    // Inspect: the manifest comes back byte for byte, by tag and by digest; the config
    // blob and its labels are the ones pushed; the tag is listed.
    assert_eq!(digest(&c.skopeo_raw_manifest("skopeo/src:v1")), manifest_digest);
    assert_eq!(
        digest(&c.skopeo_raw_manifest(&format!("skopeo/src@{manifest_digest}"))),
        manifest_digest
    );
    let info = c.skopeo_inspect("skopeo/src:v1");
    assert_eq!(str_at(&info, "/Digest"), manifest_digest, "{info:#}");
    assert_eq!(str_at(&info, "/Architecture"), "amd64", "{info:#}");
    assert_eq!(
        str_at(&info, "/Labels/org.opencontainers.image.description"),
        "skopeo test image",
        "{info:#}"
    );
    assert_eq!(info["Layers"], json!([image.layer_digest]), "{info:#}");
    let config = c.skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        "--raw",
        &c.docker("skopeo/src:v1"),
    ]);
    assert_eq!(
        digest(&config.stdout),
        image.config_digest,
        "config blob differs from the one pushed"
    );
    let tags = parse_json(&c.skopeo(&["list-tags", "--tls-verify=false", &c.docker("skopeo/src")]));
    assert_eq!(tags["Tags"], json!(["v1"]), "{tags:#}");

    // Registry to registry into another repository: skopeo mounts the layer from
    // skopeo/src (POST /v2/skopeo/dst/blobs/uploads/?mount=...&from=skopeo/src).
    let copy = c.skopeo(&[
        "--debug",
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--preserve-digests",
        &c.docker("skopeo/src:v1"),
        &c.docker("skopeo/dst:v1"),
    ]);
    let log = copy.stderr_str();
    let mount = format!("mount={}", image.layer_digest.replace(':', "%3A"));
    assert!(
        log.lines()
            .any(|l| l.contains("POST") && l.contains(&mount) && l.contains("from=skopeo%2Fsrc")),
        "skopeo did not try a cross-repo mount of the layer:\n{log}"
    );
    assert!(
        !log.contains(&format!("Upload of layer {} complete", image.layer_digest)),
        "skopeo uploaded the layer again instead of mounting it:\n{log}"
    );
    assert_eq!(digest(&c.skopeo_raw_manifest("skopeo/dst:v1")), manifest_digest);

    // Pull back as an OCI layout: same manifest, intact blobs, the same README.
    let pulled = c.skopeo_pull("skopeo/dst:v1", "pulled");
    assert_eq!(layout_top_digest(&pulled), manifest_digest);
    assert_eq!(verify_layout_blobs(&pulled), 3, "manifest, config and one layer");
    let layer = blob_path(&pulled, &image.layer_digest);
    assert_eq!(read(&layer), read(layout.blob_path(&image.layer_digest)));
    assert_eq!(String::from_utf8_lossy(&file_in_layer(&layer, "README.md")), README);

    // Pull back as a docker-archive (skopeo converts to Docker schema 2 on the way).
    let archive = c.path("image.tar");
    let name = format!("{host}/skopeo/dst:v1");
    c.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &c.docker("skopeo/dst:v1"),
        &format!("docker-archive:{archive}:{name}"),
    ]);
    let entries: Value =
        serde_json::from_slice(&file_in_layer(&archive, "manifest.json")).expect("manifest.json");
    assert_eq!(entries[0]["RepoTags"], json!([name]), "{entries:#}");
    let layer_tar = file_in_layer(&archive, str_at(&entries, "/0/Layers/0"));
    assert_eq!(digest(&layer_tar), image.layer_digest, "docker-archive layer differs");
    let config = file_in_layer(&archive, str_at(&entries, "/0/Config"));
    assert_eq!(digest(&config), image.config_digest, "docker-archive config differs");

    // And push the docker-archive back in: a Docker schema 2 image with the same layer.
    c.skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{archive}"),
        &c.docker("skopeo/from-archive:v1"),
    ]);
    let pushed = c.skopeo_inspect("skopeo/from-archive:v1");
    assert_eq!(pushed["Layers"], json!([image.layer_digest]), "{pushed:#}");
    let raw: Value = serde_json::from_slice(&c.skopeo_raw_manifest("skopeo/from-archive:v1"))
        .expect("manifest JSON");
    assert_eq!(
        raw["mediaType"],
        json!("application/vnd.docker.distribution.manifest.v2+json"),
        "{raw:#}"
    );
}

#[test]
fn skopeo_multi_arch_index_copy_all() {
    let server = TestServer::start();
    let c = Clients::new(&server.host());

    let layout = OciLayout::create(c.path("src"));
    let amd64 = layout.image("amd64", &[("arch.txt", b"amd64\n")], json!({}));
    let arm64 = layout.image("arm64", &[("arch.txt", b"arm64\n")], json!({}));
    let index = layout.index(&[&amd64.manifest, &arm64.manifest]);
    layout.tag(&index, "v1");
    let index_digest = str_at(&index, "/digest");

    let src = format!("oci:{}:v1", layout.dir.display());
    assert_eq!(c.skopeo_push_all(&src, "skopeo-multi/app:v1"), index_digest);
    let target = c.docker("skopeo-multi/app:v1");

    let raw = c.skopeo_raw_manifest("skopeo-multi/app:v1");
    assert_eq!(digest(&raw), index_digest);
    let served: Value = serde_json::from_slice(&raw).expect("index JSON");
    assert_eq!(str_at(&served, "/mediaType"), MT_INDEX);
    for (arch, image) in [("amd64", &amd64), ("arm64", &arm64)] {
        let child = str_at(&image.manifest, "/digest");
        let raw = c.skopeo_raw_manifest(&format!("skopeo-multi/app@{child}"));
        assert_eq!(digest(&raw), child, "{arch} manifest by digest");
        let manifest: Value = serde_json::from_slice(&raw).expect("manifest JSON");
        assert_eq!(str_at(&manifest, "/mediaType"), MT_MANIFEST);
        // skopeo resolves the index to this platform's image.
        let info = parse_json(&c.skopeo(&[
            "--override-arch",
            arch,
            "--override-os",
            "linux",
            "inspect",
            "--tls-verify=false",
            &target,
        ]));
        assert_eq!(str_at(&info, "/Architecture"), arch, "{info:#}");
        assert_eq!(info["Layers"], json!([image.layer_digest]), "{info:#}");
    }

    let pulled = c.skopeo_pull_all("skopeo-multi/app:v1", "pulled");
    assert_eq!(layout_top_digest(&pulled), index_digest);
    assert_eq!(verify_layout_blobs(&pulled), 7, "index + 2 × (manifest, config, layer)");
    for (arch, image) in [("amd64", &amd64), ("arm64", &arm64)] {
        let layer = blob_path(&pulled, &image.layer_digest);
        assert_eq!(file_in_layer(&layer, "arch.txt"), format!("{arch}\n").as_bytes());
    }
}
