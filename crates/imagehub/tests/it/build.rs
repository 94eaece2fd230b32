//! Cluster images (seed 003): the images a recipe deploys, found and saved into its
//! `registry/` folder as distribution's filesystem tree, which Debian's
//! `docker-registry` then serves as is to skopeo.

use std::path::Path;

use imagehub_build::{RegistryDir, SaveOptions, find_images, save_images};
use imagehub_client::{ClientSettings, Credentials, RegistryClient, RegistrySettings};
use imagehub_oci::Platform;
use serde_json::{Value, json};

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
    let options = SaveOptions {
        platform: &amd64,
        all: false,
        parallel: 5,
        credentials: &anonymous,
        local: None,
    };
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
    let options = SaveOptions {
        platform: &amd64,
        all: false,
        parallel: 5,
        credentials: &anonymous,
        local: None,
    };
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

/// `init.sh` prepares each platform in its own copy of the recipe; its failures and
/// its hangs fail the build.
#[tokio::test]
async fn init_runs_per_platform_in_a_copy_and_its_failures_and_hangs_fail_the_build() {
    let upstream = Registry::start();
    let source = upstream.server().host();
    push_index(&upstream, "library/nginx", "1.23.1").await;
    push_image(&upstream, "team/tool", "v2", "tool").await;
    let kubefile = "FROM scratch\nCOPY bin bin\nCOPY manifests manifests\nCOPY registry registry\n";
    let repo = recipes(&source, kubefile);
    let recipe = repo.path().join("applications/nginx/latest");
    write(
        &recipe,
        "init.sh",
        "set -e\necho \"preparing $NAME $VERSION for $1\"\nmkdir -p bin\necho \"$ARCH\" > bin/arch\n",
    );
    let home = tempfile::tempdir().expect("home");
    let repo_dir = repo.path().display().to_string();
    let run = |version: &str, extra: &[&str]| {
        let output = format!("oci:{}:v1", home.path().join(version).display());
        let args = [
            &["build", "--recipes", &repo_dir, "nginx", version, "--run-init"][..],
            &["--platform", "linux/amd64,linux/arm64", "--output", &output],
            extra,
        ]
        .concat();
        crate::cli::imagehub(home.path(), &args, "", None)
    };
    let built = run("1.23.1", &[]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    for arch in ["amd64", "arm64"] {
        let said = format!("preparing nginx 1.23.1 for {arch}");
        assert!(built.stderr.contains(&said), "init.sh's output is shown: {}", built.stderr);
    }
    assert!(!recipe.join("bin").exists(), "init.sh changed a copy, not the recipe");
    let index: Value = serde_json::from_slice(
        &std::fs::read(home.path().join("1.23.1/index.json")).expect("index.json"),
    )
    .expect("JSON");
    let top = index["manifests"][0]["digest"].as_str().expect("digest").replace(':', "/");
    let top: Value = serde_json::from_slice(
        &std::fs::read(home.path().join("1.23.1/blobs").join(top)).expect("index"),
    )
    .expect("JSON");
    let children = top["manifests"].as_array().expect("children");
    assert_eq!(children.len(), 2, "{top}");
    assert_ne!(children[0]["digest"], children[1]["digest"], "each platform its own bin/arch");

    // An endless line is cut, not held.
    let script = "head -c 5000000 /dev/zero | tr '\\0' x\necho\necho about to fail\nexit 3\n";
    write(&recipe, "init.sh", script);
    let failed = run("1.23.1", &[]);
    assert_eq!(failed.code, 1, "{}", &failed.stderr[failed.stderr.len().saturating_sub(500)..]);
    let longest = failed.stderr.lines().map(str::len).max().unwrap_or(0);
    assert_eq!(longest, 4096, "the 5 MB line is cut at 4 KiB");
    assert!(failed.stderr.contains("about to fail"), "{}", failed.stderr);
    assert!(failed.stderr.contains("init.sh failed (exit status: 3)"), "{}", failed.stderr);

    // A hang, and a child it started that would outlive it: both are stopped.
    write(&recipe, "init.sh", "sleep 600 &\nsleep 600\n");
    let hung = run("1.23.1", &["--init-timeout", "1"]);
    assert_eq!(hung.code, 1, "{}", hung.stderr);
    assert!(hung.stderr.contains("init.sh ran longer than 1 s"), "{}", hung.stderr);
}

/// An upstream with the images of `recipes()`, the recipes, and a hub that builds them
/// into acme (webhooks signed with `webhook-secret`).
async fn building_hub() -> (Registry, tempfile::TempDir, crate::support::hub::Hub) {
    let upstream = Registry::start();
    let source = upstream.server().host();
    push_index(&upstream, "library/nginx", "1.23.1").await;
    push_image(&upstream, "team/tool", "v2", "tool").await;
    let repo = recipes(&source, KUBEFILE);
    let recipes_dir = repo.path().to_path_buf();
    let hub = crate::support::hub::Hub::start_with(move |c| {
        c.import.insecure_registries = vec![source];
        c.build.recipes_dir = Some(recipes_dir);
        c.build.organization = "acme".into();
        c.build.webhook_secret = "webhook-secret".into();
        c.build.arch_tags = true;
    });
    (upstream, repo, hub)
}

fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Build jobs on the server: started through the API, the chat command and a signed
/// GitHub webhook, by those who may; their logs and digests; the image in the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_builds_recipes_as_jobs_for_those_who_may() {
    use crate::support::hub::Cred;
    use reqwest::Method;
    let (upstream, _repo, hub) = building_hub().await;
    let source_host = upstream.server().host();
    let olga = hub.olga_with_public_acme().await;
    hub.create_user("bob", "bob-password-1").await;
    let bob = Cred::basic("bob", "bob-password-1");

    // An image the hub holds already is copied from its store, not downloaded.
    let import = json!({"source_url": format!("{source_host}/team/tool:v2")});
    let imports = "/api/v1/orgs/acme/images/import";
    let imported = hub.api(&olga, Method::POST, imports, Some(import)).await;
    let job = imported.expect_status(202, "import").header("location").expect("URL");
    let job = hub.api(&olga, Method::GET, &format!("{job}?wait=60"), None).await.json();
    assert_eq!(job["state"], "succeeded", "{job}");

    let asked = json!({"app": "nginx", "version": "1.23.1"});
    let started = hub.api(&olga, Method::POST, "/api/v1/builds", Some(asked.clone())).await;
    let location = started.expect_status(202, "queued").header("location").expect("URL");
    let job = hub.api(&olga, Method::GET, &format!("{location}?wait=60"), None).await;
    let job = job.expect_status(200, "the job").json();
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["target"], "acme/nginx:1.23.1");
    assert_eq!(job["platforms"], json!(["linux/amd64", "linux/arm64"]));
    assert_eq!(job["platform_digests"].as_object().map(|d| d.len()), Some(2), "{job}");
    let log = job["log"].as_str().expect("log");
    assert!(
        log.contains("linux/arm64: saving 2 images") && log.contains("pushed acme/nginx"),
        "{log}"
    );
    let copied =
        "linux/amd64: 2 images saved, 0 already there; 2 blobs fetched, 2 copied from the hub";
    assert!(log.contains(copied), "{log}");
    let token = hub.token(&olga, &["repository:acme/nginx:pull".to_string()]).await.expect("token");
    let pulled =
        hub.send(hub.v2(Method::GET, "/v2/acme/nginx/manifests/1.23.1", Some(&token))).await;
    pulled.expect_status(200, "the built image is in the hub");
    assert_eq!(pulled.header("docker-content-digest").as_deref(), job["digest"].as_str());
    let arm64 =
        hub.send(hub.v2(Method::GET, "/v2/acme/nginx/manifests/1.23.1-arm64", Some(&token))).await;
    arm64.expect_status(200, "the arm64 image under its own tag");
    let digest = arm64.header("docker-content-digest");
    assert_eq!(digest.as_deref(), job["platform_digests"]["linux/arm64"].as_str());

    // Bob is no developer of acme: he may neither build nor see builds.
    let denied = hub.api(&bob, Method::POST, "/api/v1/builds", Some(asked)).await;
    assert!(denied.expect_status(403, "bob").text().contains("developer of the organization acme"));
    hub.api(&bob, Method::GET, "/api/v1/builds", None).await.expect_status(403, "bob lists");
    hub.api(&bob, Method::GET, &location, None).await.expect_status(403, "bob reads");
    // A developer of acme and a site admin may build; a viewer of acme may not.
    for (user, role) in [("dave", "developer"), ("vera", "viewer")] {
        hub.create_user(user, &format!("{user}-password-1")).await;
        let path = format!("/api/v1/orgs/acme/members/{user}");
        let member = hub.api(&olga, Method::PUT, &path, Some(json!({"role": role}))).await;
        member.expect_status_in(&[200, 201], "a member");
    }
    let dave = Cred::basic("dave", "dave-password-1");
    let vera = Cred::basic("vera", "vera-password-1");
    hub.api(&dave, Method::GET, "/api/v1/builds", None).await.expect_status(200, "dave lists");
    hub.api(&vera, Method::GET, "/api/v1/builds", None).await.expect_status(403, "vera lists");
    hub.api(&Cred::admin(), Method::GET, &location, None).await.expect_status(200, "the admin");
    let missing = json!({"app": "redis", "version": "7"});
    hub.api(&olga, Method::POST, "/api/v1/builds", Some(missing))
        .await
        .expect_status(404, "no app");
    let dots = json!({"app": "..", "version": "7"});
    hub.api(&olga, Method::POST, "/api/v1/builds", Some(dots)).await.expect_status(400, "..");

    // The chat command, as plain text: a version without a folder builds latest/.
    let http = reqwest::Client::new();
    let command = |text: &str, who: (&str, &str)| {
        http.post(hub.url("/api/v1/builds/commands"))
            .basic_auth(who.0, Some(who.1))
            .header("content-type", "text/plain")
            .body(text.to_string())
    };
    let olga_login = ("olga", "olga-password-1");
    let by_command = hub.send(command("/imagebuild_apps nginx 1.24.0", olga_login)).await;
    let by_command = by_command.expect_status(202, "command").json();
    assert_eq!(
        (by_command["version"].as_str(), by_command["origin"].as_str()),
        (Some("1.24.0"), Some("command"))
    );
    let unsupported = hub.send(command("/imagebuild_hosted nginx 1", olga_login)).await;
    assert!(unsupported.expect_status(400, "hosted").text().contains("does not support"));
    let bobs = hub.send(command("/imagebuild_apps nginx 1.23.1", ("bob", "bob-password-1"))).await;
    bobs.expect_status(403, "bob's command");

    // A GitHub webhook: its signature is the credential.
    let payload = serde_json::to_vec(&json!({
        "action": "created",
        "comment": {"body": "/imagebuild_apps nginx 1.23.1", "user": {"login": "octocat"}},
    }))
    .expect("JSON");
    let webhook = |signature: Option<String>| {
        let request = http
            .post(hub.url("/api/v1/builds/commands"))
            .header("x-github-event", "issue_comment")
            .header("content-type", "application/json")
            .body(payload.clone());
        match signature {
            Some(signature) => request.header("x-hub-signature-256", signature),
            None => request,
        }
    };
    let good = hub.send(webhook(Some(signature("webhook-secret", &payload)))).await;
    let good = good.expect_status(202, "signed webhook").json();
    assert_eq!(good["created_by"], "github:octocat", "{good}");
    let forged = hub.send(webhook(Some(signature("guessed", &payload)))).await;
    forged.expect_status(401, "a wrong signature");
    hub.send(webhook(None)).await.expect_status(401, "no signature");

    // Every job is listed for those who may build, newest first.
    let list = hub.api(&olga, Method::GET, "/api/v1/builds", None).await;
    let list = list.expect_status(200, "list").json();
    let ids: Vec<i64> =
        list["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["id"].as_i64()).collect();
    assert_eq!(ids.len(), 3, "{list}");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
}

/// The builds pages: start a build from a form, follow its log; what a recipe names is
/// escaped; the pages are for those who may build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_are_started_and_followed_in_the_web_ui() {
    use crate::web::{csrf_of, log_in, no_redirects, page_as, session_cookie};
    use reqwest::Method;
    let (_upstream, repo, hub) = building_hub().await;
    let evil = repo.path().join("applications/evil/latest");
    write(&evil, "Kubefile", "FROM scratch\nCOPY images images\n");
    write(&evil, "images/shim/list", "<script>alert(1)</script>\n");
    let olga = hub.olga_with_public_acme().await;
    hub.create_user("bob", "bob-password-1").await;
    let cookie = session_cookie(&log_in(&hub, "olga", "olga-password-1").await);
    let page = page_as(&hub, &cookie, "/builds").await.expect_status(200, "builds").text();
    assert!(page.contains("No builds yet.") && page.contains("Start build"), "{page}");
    let org = page_as(&hub, &cookie, "/o/acme").await.expect_status(200, "org").text();
    assert!(org.contains("href=\"/builds\""), "the build organization links its builds");
    let csrf = csrf_of(&page);
    let post = |form: Vec<(&'static str, String)>| {
        hub.send(no_redirects().post(hub.url("/builds")).header("cookie", &cookie).form(&form))
    };

    let start = |app: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("intent", "start".into()),
            ("app", app.to_string()),
            ("version", "1.23.1".into()),
            ("platforms", "linux/amd64".into()),
        ]
    };
    let started = post(start("nginx")).await;
    let location = started.expect_status(303, "to the build").location();
    let id = location.trim_start_matches("/builds/");
    let api = format!("/api/v1/builds/{id}?wait=60");
    let job = hub.api(&olga, Method::GET, &api, None).await.json();
    assert_eq!(job["state"], "succeeded", "{job}");
    let shown = page_as(&hub, &cookie, &location).await.expect_status(200, "the build").text();
    assert!(
        shown.contains("state-succeeded") && shown.contains("linux/amd64: saving 2 images"),
        "{shown}"
    );
    assert!(shown.contains("href=\"/r/acme/nginx/-/1.23.1\""), "{shown}");
    assert!(shown.contains(job["digest"].as_str().expect("digest")), "{shown}");

    // What a recipe names reaches the page escaped.
    let evil = post(start("evil")).await.expect_status(303, "to the build").location();
    let id = evil.trim_start_matches("/builds/");
    let job =
        hub.api(&olga, Method::GET, &format!("/api/v1/builds/{id}?wait=60"), None).await.json();
    assert_eq!(job["state"], "failed", "{job}");
    let shown = page_as(&hub, &cookie, &evil).await.expect_status(200, "the failed build").text();
    assert!(!shown.contains("<script>alert"), "{shown}");
    assert!(shown.contains("&#60;script&#62;alert(1)"), "{shown}");
    assert!(shown.contains("from applications/evil/latest\n"), "no server paths: {shown}");
    let missing = post(start("redis")).await.expect_status(404, "no such app").text();
    assert!(missing.contains("applications/redis has neither 1.23.1/ nor latest/"), "{missing}");

    // A forged form changes nothing; others are turned away.
    let mut forged = start("nginx");
    forged[0].1 = "forged".into();
    post(forged).await.expect_status(403, "forged CSRF");
    let listed = hub.api(&olga, Method::GET, "/api/v1/builds", None).await.json();
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(2), "{listed}");
    let bob = session_cookie(&log_in(&hub, "bob", "bob-password-1").await);
    page_as(&hub, &bob, "/builds").await.expect_status(403, "bob");
    page_as(&hub, &bob, &location).await.expect_status(403, "bob's look at a build");
    let anonymous = hub.send(no_redirects().get(hub.url("/builds"))).await;
    assert_eq!(anonymous.expect_status(303, "to log in").location(), "/login?next=/builds");
}

/// A recipe from a pull request is hostile input on a hub: links that point at the
/// server's files are refused wherever the builder would read through them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_build_never_reads_through_a_recipes_links() {
    use crate::support::hub::Hub;
    use reqwest::Method;
    let secret = tempfile::tempdir().expect("the server's own files");
    write(secret.path(), "secret.txt", "do not copy\n");
    write(secret.path(), "deploy.yaml", "image: registry.example/secret:v1\n");
    let repo = tempfile::tempdir().expect("recipes");
    let apps = repo.path().join("applications");
    let link = |target: &Path, at: &Path| {
        std::fs::create_dir_all(at.parent().expect("parent")).expect("dirs");
        std::os::unix::fs::symlink(target, at).expect("link");
    };
    write(&apps.join("leak/latest"), "Kubefile", "FROM scratch\n");
    link(&secret.path().join("secret.txt"), &apps.join("leak/README.md"));
    write(&apps.join("peek/latest"), "Kubefile", "FROM scratch\nCOPY manifests manifests\n");
    link(secret.path(), &apps.join("peek/latest/manifests"));
    write(&apps.join("copy/latest"), "Kubefile", "FROM scratch\nCOPY conf/secret.txt secret.txt\n");
    link(secret.path(), &apps.join("copy/latest/conf"));
    write(&apps.join("kube/latest"), "README", "no Kubefile of its own\n");
    link(&secret.path().join("secret.txt"), &apps.join("kube/latest/Kubefile"));
    let recipes_dir = repo.path().to_path_buf();
    let hub = Hub::start_with(move |c| {
        c.build.recipes_dir = Some(recipes_dir);
        c.build.organization = "acme".into();
        c.build.platforms = vec!["linux/amd64".into()];
    });
    let olga = hub.olga_with_public_acme().await;
    let build = |app: &'static str| {
        let hub = &hub;
        let olga = &olga;
        async move {
            let asked = json!({"app": app, "version": "1"});
            let started = hub.api(olga, Method::POST, "/api/v1/builds", Some(asked)).await;
            if started.status != 202u16 {
                return started.json();
            }
            let location = started.header("location").expect("URL");
            hub.api(olga, Method::GET, &format!("{location}?wait=60"), None).await.json()
        }
    };
    let leak = build("leak").await;
    assert!(leak.to_string().contains("README.md is a link; it must be a file"), "{leak}");
    for (app, said) in [
        ("peek", "manifests is a link; the builder reads only files and folders the recipe holds"),
        ("copy", "COPY conf/secret.txt: conf is a link, which a copy does not pass through"),
        ("kube", "the recipe has no Kubefile"),
    ] {
        let job = build(app).await;
        assert_eq!(job["state"], "failed", "{app}: {job}");
        let reason = job["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(said), "{app}: {reason}");
        assert!(!job["log"].as_str().unwrap_or_default().contains("do not copy"), "{job}");
    }
}

/// With `helm` on the PATH, charts are rendered by `helm template` (with the chart's
/// `NAME.values.yaml`); without it, read from their values. No package source reachable
/// here ships helm, so a stand-in checks how it is called and prints what helm would.
#[test]
fn charts_are_rendered_by_helm_when_it_is_on_the_path() {
    let host = "registry.example:5000";
    let repo = recipes(host, KUBEFILE);
    let recipe = repo.path().join("applications/nginx/latest");
    write(&recipe, "charts/web.values.yaml", "image:\n  tag: v3\n");
    let home = tempfile::tempdir().expect("home");
    let list = |path: Option<&Path>| {
        let args = ["build", &recipe.display().to_string(), "--list-images", "--json"];
        let ran = crate::cli::imagehub(home.path(), &args, "", path);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let listed: Value = serde_json::from_str(&ran.stdout).expect("JSON");
        let mut images: Vec<(String, String)> = listed["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|i| {
                (
                    i["image"].as_str().unwrap_or("").to_string(),
                    i["sources"][0].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        images.sort();
        images
    };
    let tool = format!("{host}/team/tool:v3");
    let nginx = format!("{host}/library/nginx:1.23.1");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let real_helm = std::env::split_paths(&path).any(|dir| dir.join("helm").is_file());
    if !real_helm {
        assert_eq!(
            list(None),
            vec![
                (nginx.clone(), "manifests/deploy.yaml:2".to_string()),
                (tool.clone(), "charts/web (values)".to_string()),
            ]
        );
    }

    let bin = tempfile::tempdir().expect("bin");
    let helm = bin.path().join("helm");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = template ] && [ \"$2\" = web ] || exit 2\n\
         case \"$4 $5\" in \"--values \"*web.values.yaml) ;; *) echo \"no values: $*\" >&2; exit 3;; esac\n\
         printf -- '---\\n# Source: web/templates/deploy.yaml\\nspec:\\n  containers:\\n  - image: \"{tool}\"\\n'\n"
    );
    std::fs::write(&helm, script).expect("helm");
    std::fs::set_permissions(&helm, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    assert_eq!(
        list(Some(bin.path())),
        vec![
            (nginx, "manifests/deploy.yaml:2".to_string()),
            (tool, "charts/web (helm template)".to_string())
        ],
        "the same images, found by rendering"
    );

    std::fs::write(&helm, "#!/bin/sh\necho 'Error: found in Chart.yaml, but missing in charts/ directory: db' >&2\nexit 1\n")
        .expect("helm");
    let args = ["build", &recipe.display().to_string(), "--list-images"];
    let failed = crate::cli::imagehub(home.path(), &args, "", Some(bin.path()));
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains(
            "charts/web: helm template failed (exit status: 1): Error: found in Chart.yaml"
        ),
        "{}",
        failed.stderr
    );
}

/// A build running when the server stops is stopped with it (its init.sh too) and
/// taken up again, from the start, when the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_cut_off_by_a_restart_runs_again_and_succeeds() {
    use reqwest::Method;
    let repo = tempfile::tempdir().expect("recipes");
    let signals = tempfile::tempdir().expect("signals");
    let started = signals.path().join("started");
    let made = std::process::Command::new("mkfifo").arg(&started).status().expect("mkfifo");
    assert!(made.success());
    let marker = signals.path().join("first-run-done");
    let recipe = repo.path().join("applications/slow/latest");
    write(&recipe, "Kubefile", "FROM scratch\nCOPY manifests manifests\n");
    write(&recipe, "manifests/cm.yaml", "kind: ConfigMap\n");
    // The first run says it started, then never ends; the second ends at once.
    let script = format!(
        "if [ -e '{marker}' ]; then echo second run; exit 0; fi\n\
         touch '{marker}'\necho started > '{started}'\nsleep 6061\n",
        marker = marker.display(),
        started = started.display()
    );
    write(&recipe, "init.sh", &script);
    let configure = |recipes: std::path::PathBuf| {
        move |c: &mut imagehub_server::config::Config| {
            c.build.recipes_dir = Some(recipes);
            c.build.organization = "acme".into();
            c.build.platforms = vec!["linux/amd64".into()];
            c.build.run_init = true;
        }
    };
    let hub = crate::support::hub::Hub::start_with(configure(repo.path().to_path_buf()));
    let olga = hub.olga_with_public_acme().await;
    let asked = json!({"app": "slow", "version": "1"});
    let location = hub
        .api(&olga, Method::POST, "/api/v1/builds", Some(asked))
        .await
        .expect_status(202, "queued")
        .header("location")
        .expect("URL");
    // Opening the pipe waits for init.sh to write to it: the build is running.
    let said = tokio::task::spawn_blocking(move || std::fs::read_to_string(started))
        .await
        .expect("join")
        .expect("read the pipe");
    assert_eq!(said.trim(), "started");

    let hub = hub.restart_with(configure(repo.path().to_path_buf()));
    let job = hub.api(&olga, Method::GET, &format!("{location}?wait=60"), None).await.json();
    assert_eq!(job["state"], "succeeded", "{job}");
    let log = job["log"].as_str().unwrap_or_default();
    assert!(log.contains("the server stopped during this build; it starts again"), "{log}");
    assert!(log.contains("second run"), "{log}");
    let sleeping = std::process::Command::new("pgrep").args(["-f", "sleep 6061"]).output();
    let left = sleeping.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(left.unwrap_or_default(), "", "init.sh's children were stopped with the server");
}
