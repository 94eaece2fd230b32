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

/// A cluster-image repository with the recipe `applications/nginx/latest/` deploying
/// `HOST/library/nginx:1.23.1` (two platforms) and `HOST/team/tool:v2`.
fn recipes(host: &str, kubefile: &str) -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("recipes");
    let app = repo.path().join("applications/nginx");
    write(&app, "README.md", "# nginx\n\nA cluster image of nginx, built by imagehub.\n");
    let recipe = app.join("latest");
    write(&recipe, "Kubefile", kubefile);
    write(
        &recipe,
        "manifests/deploy.yaml",
        &format!("containers:\n- image: {host}/library/nginx:1.23.1\n"),
    );
    write(&recipe, "manifests/svc.yaml.tmpl", "port: {{ .port }}\n");
    write(&recipe, "charts/web/Chart.yaml", "name: web\nappVersion: v2\n");
    write(
        &recipe,
        "charts/web/values.yaml",
        &format!("image:\n  registry: {host}\n  repository: team/tool\n"),
    );
    repo
}

const KUBEFILE: &str = "FROM scratch\nARG VERSION\nENV VERSION=${VERSION}\n\
    COPY charts charts\nCOPY manifests manifests\nCOPY registry registry\n\
    CMD [\"kubectl apply -f manifests\"]\n";

#[tokio::test]
async fn a_recipe_builds_for_two_platforms_pushes_and_shows_its_readme_in_the_hub() {
    let upstream = Registry::start();
    let source = upstream.server().host();
    push_index(&upstream, "library/nginx", "1.23.1").await;
    push_image(&upstream, "team/tool", "v2", "tool").await;
    let (hub, host) = crate::cli::hub_with_private_image().await;
    let home = crate::cli::olgas_home(&host);
    let repo = recipes(&source, KUBEFILE);

    let repo_dir = repo.path().display().to_string();
    let recipe = ["build", "--recipes", repo_dir.as_str(), "nginx", "1.23.1"];
    let listed =
        crate::cli::imagehub(home.path(), &[&recipe[..], &["--list-images"]].concat(), "", None);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains(&format!("{source}/library/nginx:1.23.1  manifests/deploy.yaml:2")),
        "{}",
        listed.stdout
    );
    assert!(listed.stdout.contains("charts/web (values)"), "{}", listed.stdout);

    let image = format!("{host}/olga/nginx:v1.23.1");
    let built = crate::cli::imagehub(
        home.path(),
        &[
            &recipe[..],
            &["-t", &image, "--platform", "linux/amd64,linux/arm64", "--push", "--arch-tags"],
        ]
        .concat(),
        "",
        None,
    );
    assert_eq!(built.code, 0, "{}", built.stderr);
    let olga = crate::support::hub::Cred::basic("olga", "olga-password-1");
    let index =
        hub.api(&olga, reqwest::Method::GET, "/v2/olga/nginx/manifests/v1.23.1", None).await;
    let index = index.expect_status(200, "the index").json();
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .expect("children")
        .iter()
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .collect();
    assert_eq!(archs, vec!["amd64", "arm64"], "{index}");
    for arch in ["amd64", "arm64"] {
        let tagged = hub
            .api(
                &olga,
                reqwest::Method::GET,
                &format!("/v2/olga/nginx/manifests/v1.23.1-{arch}"),
                None,
            )
            .await;
        tagged.expect_status(200, "a tag per platform");
    }
    hub.api(
        &crate::support::hub::Cred::admin(),
        reqwest::Method::POST,
        "/api/v1/admin/index",
        None,
    )
    .await
    .expect_status_in(&[200, 204], "indexed");
    let shown = hub
        .api(&olga, reqwest::Method::GET, "/api/v1/orgs/olga/repos/nginx/images/v1.23.1", None)
        .await;
    let shown = shown.expect_status(200, "the image").json();
    assert!(
        shown["details"]["docs"].as_str().is_some_and(|d| d.contains("built by imagehub")),
        "the app's README is the image's: {shown}"
    );
    let recipe = repo.path().join("applications/nginx/latest");
    assert!(
        recipe
            .join(".imagehub/registry/linux-arm64/docker/registry/v2/repositories/library/nginx")
            .is_dir()
    );
}

#[tokio::test]
async fn building_twice_gives_the_same_digest_and_run_is_refused_with_its_line() {
    let upstream = Registry::start();
    let source = upstream.server().host();
    push_index(&upstream, "library/nginx", "1.23.1").await;
    push_image(&upstream, "team/tool", "v2", "tool").await;
    let repo = recipes(&source, KUBEFILE);
    let home = tempfile::tempdir().expect("home");
    let recipe = repo.path().join("applications/nginx/latest");
    let mut digests = Vec::new();
    for out in ["one", "two"] {
        let output = format!("oci:{}:v1", home.path().join(out).display());
        let built = crate::cli::imagehub(
            home.path(),
            &[
                "build",
                &recipe.display().to_string(),
                "--output",
                &output,
                "--build-arg",
                "VERSION=1.23.1",
            ],
            "",
            None,
        );
        assert_eq!(built.code, 0, "{}", built.stderr);
        let digest =
            built.stdout.rsplit('(').next().unwrap_or("").trim().trim_end_matches(')').to_string();
        assert!(digest.starts_with("sha256:"), "{}", built.stdout);
        digests.push(digest);
    }
    assert_eq!(digests[0], digests[1], "the same recipe, the same image");
    assert!(
        recipe
            .join(
                "registry/docker/registry/v2/repositories/team/tool/_manifests/tags/v2/current/link"
            )
            .is_file()
    );

    // skopeo reads the built image and finds the registry folder's files in it.
    let out =
        skopeo(home.path(), &["inspect", &format!("oci:{}:v1", home.path().join("one").display())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inspected: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(inspected["Labels"]["sealos.io.type"], "application", "{inspected}");
    assert_eq!(inspected["Env"], serde_json::json!(["VERSION=1.23.1"]), "{inspected}");
    assert_eq!(inspected["Layers"].as_array().map(Vec::len), Some(3), "{inspected}");

    let refused = recipes(
        &source,
        "FROM scratch\nCOPY manifests manifests\nRUN curl -o x https://example.com\n",
    );
    let recipe = refused.path().join("applications/nginx/latest");
    let built = crate::cli::imagehub(
        home.path(),
        &["build", &recipe.display().to_string(), "--output", "oci:/nonexistent/x"],
        "",
        None,
    );
    assert_eq!(built.code, 1, "{}", built.stderr);
    assert!(built.stderr.contains("Kubefile:3: RUN is not supported"), "{}", built.stderr);
}
