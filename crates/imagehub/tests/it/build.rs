//! Cluster images (seed 003): the images a recipe deploys, found and saved into its
//! `registry/` folder as distribution's filesystem tree, which Debian's
//! `docker-registry` then serves as is to skopeo.

use std::path::Path;

use imagehub_build::{RegistryDir, SaveOptions, find_images, save_images};
use imagehub_client::{ClientSettings, Credentials, RegistryClient, RegistrySettings};
use imagehub_oci::Platform;
use serde_json::Value;

use crate::cli::skopeo;
use crate::imports::push_index;
use crate::support::distribution::Distribution;
use crate::support::registry::{Registry, push_image};

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
    std::fs::write(path, text).expect("write");
}

fn client_for(registry: &str) -> RegistryClient {
    let mut settings = ClientSettings { any_address: true, ..ClientSettings::default() };
    let insecure = RegistrySettings { mirror: None, insecure: true };
    settings.registries.insert(registry.to_string(), insecure);
    RegistryClient::new(settings).expect("client")
}

#[tokio::test]
async fn the_images_of_a_recipe_are_saved_as_a_tree_distribution_serves() {
    let upstream = Registry::start();
    let host = upstream.server().host();
    let (_, _, children) = push_index(&upstream, "library/nginx", "1.23.1").await;
    let (_, tool_digest) = push_image(&upstream, "team/tool", "v2", "tool").await;
    let context = tempfile::tempdir().expect("context");
    write(
        context.path(),
        "manifests/deploy.yaml",
        &format!("containers:\n- name: web\n  image: {host}/library/nginx:1.23.1\n"),
    );
    write(context.path(), "images/shim/list", &format!("{host}/team/tool:v2\n"));

    let list = find_images(context.path()).expect("images");
    assert_eq!(list.images.len(), 2, "{list:?}");
    let client = client_for(&host);
    let amd64 = Platform { os: "linux".into(), architecture: "amd64".into(), variant: None };
    let anonymous = |_: &imagehub_client::RemoteReference| Credentials::Anonymous;
    let options =
        SaveOptions { platform: &amd64, all: false, parallel: 5, credentials: &anonymous };
    let folder = RegistryDir::new(context.path().join("registry"));
    let saved = save_images(&client, &list.images, &folder, &options).await.expect("saved");
    assert_eq!((saved.saved, saved.present), (2, 0), "{saved:?}");
    assert_eq!(saved.blobs_fetched, 4, "config and layer of each: {saved:?}");

    // Debian's docker-registry serves the folder as it is.
    let served = Distribution::start(&context.path().join("registry"), None);
    let catalog: Value = reqwest::get(format!("{}/v2/_catalog", served.url()))
        .await
        .expect("catalog")
        .json()
        .await
        .expect("JSON");
    assert_eq!(catalog["repositories"], serde_json::json!(["library/nginx", "team/tool"]));
    let home = tempfile::tempdir().expect("home");
    for (name, digest) in [("library/nginx:1.23.1", &children[0]), ("team/tool:v2", &tool_digest)] {
        let out = skopeo(
            home.path(),
            &["inspect", "--tls-verify=false", &format!("docker://{}/{name}", served.host)],
        );
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let inspected: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(inspected["Digest"], digest.as_str(), "{name}: the amd64 image, digest kept");
        let layout = home.path().join(name.replace([':', '/'], "-"));
        let out = skopeo(
            home.path(),
            &[
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{}/{name}", served.host),
                &format!("oci:{}:x", layout.display()),
            ],
        );
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }

    // Saved again: nothing is fetched.
    let again = save_images(&client, &list.images, &folder, &options).await.expect("again");
    assert_eq!((again.saved, again.present, again.blobs_fetched), (0, 2, 0), "{again:?}");
}

#[tokio::test]
async fn an_image_missing_upstream_fails_the_save_naming_it_and_where_it_was_found() {
    let upstream = Registry::start();
    let host = upstream.server().host();
    let context = tempfile::tempdir().expect("context");
    write(context.path(), "images/shim/list", &format!("# needed\n{host}/team/gone:v1\n"));
    let list = find_images(context.path()).expect("images");
    let amd64 = Platform { os: "linux".into(), architecture: "amd64".into(), variant: None };
    let anonymous = |_: &imagehub_client::RemoteReference| Credentials::Anonymous;
    let options =
        SaveOptions { platform: &amd64, all: false, parallel: 5, credentials: &anonymous };
    let folder = RegistryDir::new(context.path().join("registry"));
    let failed = save_images(&client_for(&host), &list.images, &folder, &options)
        .await
        .expect_err("missing");
    let message = failed.to_string();
    assert!(
        message.contains(&format!("{host}/team/gone:v1")) && message.contains("images/shim/list:2"),
        "{message}"
    );
}
