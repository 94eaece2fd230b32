//! Image details extracted at push time: images built by the test from files into OCI
//! layouts, pushed with skopeo, indexed by the background job, read back through
//! `/api/v1/orgs/{org}/repos/{repo}/images`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::realclients::{Clients, OciLayout, tar};
use crate::support::hub::{Cred, Hub};

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

const README_WITH_FRONT_MATTER: &str = "---
keywords: [database, sql]
description: MySQL, the database
icon: https://example.org/mysql.png
url: https://www.mysql.com
---
# MySQL

Run it with `docker run`.
";

/// A test server with accounts on and clients logged in as the admin.
struct Setup {
    hub: Hub,
    clients: Clients,
}

impl Setup {
    fn new() -> Setup {
        let hub = Hub::start();
        let clients = Clients::new(&hub.server().host());
        clients.skopeo(&[
            "login",
            "--tls-verify=false",
            "-u",
            "admin",
            "-p",
            imagehub_testkit::ADMIN_PASSWORD,
            &hub.server().host(),
        ]);
        Setup { hub, clients }
    }

    /// Pushes the layout's tagged image to `admin/<repo>:<tag>` and indexes it.
    async fn push(&self, layout: &OciLayout, repo: &str, tag: &str, all: bool) {
        let src = format!("oci:{}:{tag}", layout.dir.display());
        let dest = format!("admin/{repo}:{tag}");
        if all {
            self.clients.skopeo_push_all(&src, &dest);
        } else {
            self.clients.skopeo_push(&src, &dest);
        }
        let reply = self.hub.api(&Cred::admin(), Method::POST, "/api/v1/admin/index", None).await;
        reply.expect_status(200, "run the indexing queue");
    }

    async fn image(&self, repo: &str, reference: &str) -> Value {
        let reply = self
            .hub
            .api(
                &Cred::admin(),
                Method::GET,
                &format!("/api/v1/orgs/admin/repos/{repo}/images/{reference}"),
                None,
            )
            .await;
        reply.expect_status(200, "image details");
        reply.json()
    }
}

fn layout(dir: &tempfile::TempDir, name: &str) -> OciLayout {
    OciLayout::create(dir.path().join(name))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

#[tokio::test]
async fn a_readme_with_front_matter_fills_the_details() {
    let s = Setup::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let l = layout(&dir, "mysql");
    let labels = json!({"org.opencontainers.image.description": "from labels", "org.opencontainers.image.licenses": "GPL-2.0"});
    let image = l.image_with_layers(
        "amd64",
        &[
            (TAR, tar(&[("bin/mysqld", b"binary")])),
            (TAR_GZIP, gzip(&tar(&[("README.md", README_WITH_FRONT_MATTER.as_bytes())]))),
        ],
        labels,
    );
    l.tag(&image.manifest, "v8");
    s.push(&l, "mysql", "v8", false).await;

    let v = s.image("mysql", "v8").await;
    assert_eq!(v["name"], "admin/mysql:v8");
    assert_eq!(v["indexed"], true);
    assert_eq!(v["index_error"], Value::Null);
    assert_eq!(v["pushed_by"], "admin");
    assert_eq!(v["platforms"][0]["architecture"], "amd64");
    assert_eq!(v["platforms"][0]["os"], "linux");
    assert_eq!(v["created"], "2024-01-01T00:00:00Z");
    assert_eq!(v["details"]["id"], image.config_digest);
    let d = &v["details"];
    assert_eq!(d["keywords"], json!(["database", "sql"]));
    assert_eq!(d["description"], "MySQL, the database", "the README beats the labels");
    assert_eq!(d["icon"], "https://example.org/mysql.png");
    assert_eq!(d["url"], "https://www.mysql.com");
    assert_eq!(d["docs"], "# MySQL\n\nRun it with `docker run`.\n");
    assert_eq!(d["licenses"], "GPL-2.0", "labels fill what the README leaves empty");
    assert_eq!(v["detail_sources"], json!(["image_readme", "labels"]));
}

#[tokio::test]
async fn without_front_matter_the_first_paragraph_describes_the_image() {
    let s = Setup::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let l = layout(&dir, "plain");
    let image =
        l.image("amd64", &[("README.md", b"# Cache\n\nA fast\ncache.\n\nMore text.")], json!({}));
    l.tag(&image.manifest, "1");
    s.push(&l, "cache", "1", false).await;
    let d = &s.image("cache", "1").await["details"];
    assert_eq!(d["description"], "A fast cache.");
    assert_eq!(d["keywords"], Value::Null);
}

#[tokio::test]
async fn a_whiteout_in_an_upper_layer_deletes_the_readme() {
    let s = Setup::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let l = layout(&dir, "whiteout");
    let image = l.image_with_layers(
        "amd64",
        &[
            (TAR, tar(&[("README.md", README_WITH_FRONT_MATTER.as_bytes())])),
            (TAR, tar(&[(".wh.README.md", b"")])),
        ],
        json!({"org.opencontainers.image.description": "labels only now"}),
    );
    l.tag(&image.manifest, "2");
    s.push(&l, "gone", "2", false).await;
    let v = s.image("gone", "2").await;
    assert_eq!(v["details"]["docs"], Value::Null);
    assert_eq!(v["details"]["description"], "labels only now");
    assert_eq!(v["detail_sources"], json!(["labels"]));
}

#[tokio::test]
async fn a_zstd_layer_is_read() {
    let s = Setup::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let l = layout(&dir, "zstd");
    let layer =
        zstd::encode_all(&tar(&[("README.md", README_WITH_FRONT_MATTER.as_bytes())])[..], 3)
            .expect("zstd");
    let image = l.image_with_layers("arm64", &[(TAR_ZSTD, layer)], json!({}));
    l.tag(&image.manifest, "z");
    s.push(&l, "zstd", "z", false).await;
    assert_eq!(s.image("zstd", "z").await["details"]["keywords"], json!(["database", "sql"]));
}

#[tokio::test]
async fn an_index_lists_its_platforms_and_takes_the_first_readme() {
    let s = Setup::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let l = layout(&dir, "multi");
    let amd64 = l.image(
        "amd64",
        &[("bin/app", b"x86")],
        json!({"org.opencontainers.image.url": "https://labels.example"}),
    );
    let arm64 =
        l.image("arm64", &[("README.md", b"---\ndescription: from arm64\n---\nbody")], json!({}));
    let index = l.index(&[&amd64.manifest, &arm64.manifest]);
    l.tag(&index, "multi");
    s.push(&l, "multi", "multi", true).await;
    let v = s.image("multi", "multi").await;
    let archs: Vec<&str> = v["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .map(|p| p["architecture"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    assert_eq!(v["details"]["description"], "from arm64");
    assert_eq!(v["details"]["url"], "https://labels.example");
    assert_eq!(v["details"]["arch"], json!(["amd64", "arm64"]));
}

#[tokio::test]
async fn labels_alone_give_details() {
    let s = Setup::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let l = layout(&dir, "labels");
    let labels = json!({
        "org.opencontainers.image.description": "Just labels",
        "org.opencontainers.image.url": "https://example.org",
        "org.opencontainers.image.source": "https://git.example.org/app",
        "org.opencontainers.image.title": "App",
        "org.opencontainers.image.vendor": "Example",
        "org.opencontainers.image.documentation": "https://docs.example.org",
    });
    let image = l.image("amd64", &[("bin/app", b"app")], labels);
    l.tag(&image.manifest, "l");
    s.push(&l, "labels", "l", false).await;
    let d = &s.image("labels", "l").await["details"];
    assert_eq!(d["description"], "Just labels");
    assert_eq!(d["source"], "https://git.example.org/app");
    assert_eq!(d["title"], "App");
    assert_eq!(d["vendor"], "Example");
    assert_eq!(d["documentation"], "https://docs.example.org");
}

#[tokio::test]
async fn hostile_front_matter_and_labels_are_held_to_the_edit_rules() {
    let s = Setup::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let l = layout(&dir, "hostile");
    let keywords: Vec<String> = (0..50_000).map(|i| format!("k{i}")).collect();
    let readme = format!(
        "---\nicon: \"javascript:alert(1)\"\nkeywords: [{}]\ndescription: {}\nurl: \"data:text/html,<script>alert(1)</script>\"\n---\n# Hostile\n",
        keywords.join(", "),
        "x".repeat(200_000)
    );
    let labels = json!({
        "org.opencontainers.image.documentation": "https://docs.example.org/\" onmouseover=\"alert(1)",
        "org.opencontainers.image.source": "https://git.example.org/app",
        "org.opencontainers.image.title": "t".repeat(5000),
    });
    let image = l.image("amd64", &[("README.md", readme.as_bytes())], labels);
    l.tag(&image.manifest, "h");
    s.push(&l, "hostile", "h", false).await;
    let v = s.image("hostile", "h").await;
    let d = &v["details"];
    assert!(
        d["icon"].is_null()
            && d["url"].is_null()
            && d["documentation"].is_null()
            && d["title"].is_null(),
        "{d:#}"
    );
    assert!(d["description"].as_str().is_none_or(|text| text.chars().count() <= 1000), "{d:#}");
    assert_eq!(d["keywords"].as_array().map(Vec::len), Some(20), "{d:#}");
    assert_eq!(d["source"], "https://git.example.org/app", "what passes is kept");
    assert_eq!(d["docs"], "# Hostile\n");
    let error = v["index_error"].as_str().unwrap_or_default();
    for field in ["icon", "keywords", "description", "url", "documentation", "title"] {
        assert!(error.contains(&format!(" {field}: ")), "{field} is named in {error:?}");
    }
    assert!(error.len() < 8 * 1024, "the record is bounded: {} bytes", error.len());
}

#[tokio::test]
async fn a_broken_layer_is_recorded_on_the_image_and_the_push_succeeds() {
    let s = Setup::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let l = layout(&dir, "broken");
    let image = l.image_with_layers(
        "amd64",
        &[(TAR_GZIP, b"this is not gzip".to_vec())],
        json!({"org.opencontainers.image.description": "still described"}),
    );
    l.tag(&image.manifest, "b");
    s.push(&l, "broken", "b", false).await;
    let v = s.image("broken", "b").await;
    assert_eq!(v["indexed"], true);
    assert!(
        v["index_error"]
            .as_str()
            .is_some_and(|e| e.contains("not a tar") || e.contains("gzip") || e.contains("layer")),
        "{v:#}"
    );
    assert_eq!(v["details"]["description"], "still described");
}

#[tokio::test]
async fn images_of_a_repository_are_listed_and_hidden_from_those_who_may_not_pull() {
    let s = Setup::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let l = layout(&dir, "list");
    let image = l.image("amd64", &[("README.md", README_WITH_FRONT_MATTER.as_bytes())], json!({}));
    l.tag(&image.manifest, "v1");
    s.push(&l, "listed", "v1", false).await;
    let reply = s
        .hub
        .api(&Cred::admin(), Method::GET, "/api/v1/orgs/admin/repos/listed/images", None)
        .await;
    reply.expect_status(200, "list images");
    let images = reply.json()["images"].clone();
    assert_eq!(images.as_array().map(Vec::len), Some(1));
    assert_eq!(images[0]["tag"], "v1");
    assert_eq!(images[0]["details"]["description"], "MySQL, the database");
    assert_eq!(images[0]["details"]["docs"], Value::Null, "listings leave the docs out");

    s.hub.create_user("eve", "eve-Secret-12").await;
    let eve = Cred::basic("eve", "eve-Secret-12");
    s.hub
        .api(&eve, Method::GET, "/api/v1/orgs/admin/repos/listed/images", None)
        .await
        .expect_status(404, "a private repository");
    s.hub
        .api(&Cred::Anonymous, Method::GET, "/api/v1/orgs/admin/repos/listed/images/v1", None)
        .await
        .expect_status(404, "anonymous");
    s.hub
        .api(&eve, Method::POST, "/api/v1/admin/index", None)
        .await
        .expect_status(403, "only admins run the queue");
}
