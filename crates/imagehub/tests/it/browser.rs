//! The web UI in a real browser (headless Chromium through WebDriver): what a README
//! carries cannot run, a visitor searches and opens a repository, logs in and sees their
//! private repository, edits details, creates an organization and adds a member,
//! creates and revokes a token, adds an image from YAML; outsiders never see a private
//! repository; no page has a serious accessibility violation (axe-core); and the
//! screenshots under `docs/screenshots/`.

use fantoccini::Locator;
use reqwest::Method;
use serde_json::json;

use crate::support::browser::{Browser, Scheme};
use crate::support::hub::{Cred, Hub, repo_scope};

const HOSTILE_README: &str = "---\ndescription: A web app\nkeywords: [web]\n---\n# App\n\n\
<script>document.title = 'pwned by script'</script>\n\n\
<img src=x onerror=\"document.title = 'pwned by onerror'\">\n\n\
<a href=\"javascript:document.title='pwned by link'\" id=\"bad\">bad</a>\n";

/// acme (public) with acme/app (a hostile README), acme/db and acme/tools (an image with
/// a build history and config); olga/private.
pub(crate) async fn hub() -> (Hub, Cred) {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    hub.push_with_readme(&olga, "acme/app", "v1", HOSTILE_README).await;
    let db = "---\ndescription: A database for everything\nkeywords: [database, sql]\n---\n# DB\n\n## Getting started\n\n```sh\nsealos run acme/db:v1\n```\n";
    hub.push_with_readme(&olga, "acme/db", "v1", db).await;
    hub.push_with_readme(&olga, "olga/private", "v1", "# Mine").await;
    let token = hub.token(&olga, &[repo_scope("acme/tools", "pull,push")]).await.expect("token");
    hub.push_platform_image(&token, "acme/tools", "arm64").await;
    hub.api(&Cred::admin(), Method::POST, "/api/v1/admin/index", None)
        .await
        .expect_status(200, "run the indexing queue");
    (hub, olga)
}

#[tokio::test]
async fn nothing_in_a_readme_runs_in_the_browser() {
    let (hub, _) = hub().await;
    let browser = Browser::start(Scheme::Light).await;
    let client = &browser.client;
    client.goto(&hub.url("/r/acme/app")).await.expect("open the repository page");
    assert_eq!(client.title().await.expect("title"), "acme/app · imagehub");
    let scripts: serde_json::Value = client
        .execute(
            "return document.querySelectorAll('.readme script, .readme [onerror]').length",
            vec![],
        )
        .await
        .expect("run a check");
    assert_eq!(scripts, json!(0));
    // A link the README smuggled in is gone or inert: following it changes nothing.
    if let Ok(link) = client.find(Locator::Css("#user-content-bad, .readme a")).await {
        let _ = link.click().await;
    }
    assert!(!client.title().await.expect("title").contains("pwned"), "something in the README ran");
    browser.close().await;
}

#[tokio::test]
async fn a_visitor_searches_opens_a_repository_and_logs_in() {
    let (hub, _) = hub().await;
    let browser = Browser::start(Scheme::Light).await;
    let client = &browser.client;
    client.goto(&hub.url("/")).await.expect("open explore");
    let page = client.source().await.expect("source");
    assert!(
        page.contains("acme/db") && !page.contains("olga/private"),
        "an anonymous visitor sees public repositories only"
    );

    let search = client.find(Locator::Css("#q")).await.expect("the search box");
    search.send_keys("database").await.expect("type");
    browser.click_to(Locator::Css(".search button"), "Search “database” · imagehub").await;
    browser.click_to(Locator::LinkText("acme/db"), "acme/db · imagehub").await;
    assert!(client.current_url().await.expect("url").path().ends_with("/r/acme/db"));
    let readme = client
        .find(Locator::Css(".readme h2"))
        .await
        .expect("the README")
        .text()
        .await
        .expect("text");
    assert_eq!(readme, "Getting started");

    client.goto(&hub.url("/r/olga/private")).await.expect("a private repository");
    assert_eq!(client.title().await.expect("title"), "Not found · imagehub");
    // Back where she was going, now allowed.
    log_in_as_olga(&browser, &hub, "/r/olga/private", "olga/private · imagehub").await;
    let who = client
        .find(Locator::Css(".who"))
        .await
        .expect("the account menu")
        .text()
        .await
        .expect("text");
    assert_eq!(who, "olga");
    browser.click_to(Locator::Css(".account button"), "Explore · imagehub").await;
    client.goto(&hub.url("/r/olga/private")).await.expect("again");
    assert_eq!(client.title().await.expect("title"), "Not found · imagehub", "logged out");
    browser.close().await;
}

#[tokio::test]
async fn an_owner_makes_a_repository_private_and_visitors_lose_it() {
    let (hub, olga) = hub().await;
    let browser = Browser::start(Scheme::Light).await;
    let client = &browser.client;
    log_in_as_olga(&browser, &hub, "/r/acme/app", "acme/app · imagehub").await;
    browser.click_to(Locator::LinkText("Settings"), "acme/app · imagehub").await;
    let private = client.wait().for_element(Locator::Css("input[value=private]")).await;
    private.expect("the private choice").click().await.expect("choose private");
    client
        .find(Locator::Css("form input[name=intent][value=settings] ~ .buttons button"))
        .await
        .expect("save")
        .click()
        .await
        .expect("save");
    client.wait().for_element(Locator::Css(".badge-private")).await.expect("the private badge");
    let repo = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/app", None).await;
    assert_eq!(repo.json()["visibility"], "private");
    browser.click_to(Locator::Css(".account button"), "Explore · imagehub").await;
    let explore = client.source().await.expect("explore");
    assert!(!explore.contains("acme/app"), "gone from explore for a visitor");
    client.goto(&hub.url("/r/acme/app")).await.expect("the page");
    assert_eq!(client.title().await.expect("title"), "Not found · imagehub");
    browser.close().await;
}

#[tokio::test]
async fn search_runs_as_you_type_and_pull_commands_copy() {
    let (hub, _) = hub().await;
    let browser = Browser::start(Scheme::Light).await;
    let client = &browser.client;
    client.goto(&hub.url("/")).await.expect("explore");
    let search = client.find(Locator::Css("#q")).await.expect("the search box");
    search.send_keys("datab").await.expect("type");
    browser.wait_for_title("Search “datab” · imagehub").await;
    let source = client.source().await.expect("source");
    assert!(source.contains("acme/db") && !source.contains("acme/app"), "results replace cards");
    assert!(client.current_url().await.expect("url").as_str().ends_with("/?q=datab"));

    client.goto(&hub.url("/r/acme/db")).await.expect("a repository");
    // The clipboard is the system's; record what the page hands it instead.
    client
        .execute(
            "window.copied = null; \
             navigator.clipboard.writeText = async (text) => { window.copied = text; };",
            vec![],
        )
        .await
        .expect("record the clipboard");
    client
        .find(Locator::Css(".pull button.copy"))
        .await
        .expect("a copy button")
        .click()
        .await
        .expect("copy");
    let copied = client.execute("return window.copied;", vec![]).await.expect("what was copied");
    let host = hub.server().host();
    assert_eq!(copied.as_str(), Some(format!("docker pull {host}/acme/db:v1").as_str()));
    browser.close().await;
}

/// Logs olga in through the form, going on to `next`, titled `title`.
pub(crate) async fn log_in_as_olga(browser: &Browser, hub: &Hub, next: &str, title: &str) {
    log_in_as(browser, hub, ("olga", "olga-password-1"), next, title).await;
}

/// Logs `user` in with `password` through the form, going on to `next`, titled `title`.
pub(crate) async fn log_in_as(
    browser: &Browser,
    hub: &Hub,
    (user, password): (&str, &str),
    next: &str,
    title: &str,
) {
    let client = &browser.client;
    client.goto(&hub.url(&format!("/login?next={next}"))).await.expect("the login form");
    for (field, text) in [("username", user), ("password", password)] {
        let input = client.find(Locator::Id(field)).await.expect("a login field");
        input.send_keys(text).await.expect("type");
    }
    browser.click_to(Locator::Css("form.stacked button"), title).await;
}

#[tokio::test]
async fn details_are_edited_with_a_preview_shown_on_the_page_and_reset() {
    let (hub, olga) = hub().await;
    let browser = Browser::start(Scheme::Light).await;
    let client = &browser.client;
    log_in_as_olga(&browser, &hub, "/r/acme/db", "acme/db · imagehub").await;
    browser.click_to(Locator::LinkText("Edit details"), "Edit acme/db:v1 · imagehub").await;

    let description = client.find(Locator::Id("description")).await.expect("the field");
    description.clear().await.expect("clear");
    description.send_keys("Edited in a real browser").await.expect("type");
    let docs = client.find(Locator::Id("docs")).await.expect("the docs");
    docs.clear().await.expect("clear");
    docs.send_keys("# Preview me\n\n<img src=x onerror=\"document.title='pwned'\">")
        .await
        .expect("type");
    // The preview follows the typing (JavaScript); the Preview button gives it without
    // (tested over HTTP), and the page is the same either way.
    let live = client.wait().for_element(Locator::Css(".preview h1")).await.expect("live");
    assert_eq!(live.text().await.expect("text"), "Preview me");
    assert_eq!(client.title().await.expect("title"), "Edit acme/db:v1 · imagehub", "nothing ran");

    browser.click_to(Locator::Css("button[value=save]"), "acme/db · imagehub").await;
    let shown = client.find(Locator::Css(".repo-title .description")).await.expect("description");
    assert_eq!(shown.text().await.expect("text"), "Edited in a real browser");
    let image = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/db/images/v1", None).await;
    assert_eq!(image.json()["details"]["description"], "Edited in a real browser");

    // Back to what the image's README says.
    browser.click_to(Locator::LinkText("Edit details"), "Edit acme/db:v1 · imagehub").await;
    let reset = client.find(Locator::Css("input[name=reset_description]")).await;
    reset.expect("the reset box").click().await.expect("tick it");
    browser.click_to(Locator::Css("button[value=save]"), "acme/db · imagehub").await;
    let shown = client.find(Locator::Css(".repo-title .description")).await.expect("description");
    assert_eq!(shown.text().await.expect("text"), "A database for everything");
    let image = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/db/images/v1", None).await;
    assert_eq!(image.json()["details"]["description"], "A database for everything");
    browser.close().await;
}

#[tokio::test]
async fn no_page_has_a_serious_accessibility_violation_in_light_or_dark() {
    let (hub, _) = hub().await;
    let pages = [
        "/",
        "/?q=database",
        "/?keyword=sql&sort=name",
        "/r/acme/db",
        "/r/acme/db?tab=tags",
        "/r/acme/tools/-/v1-arm64",
        "/r/acme/db/-/v1/edit",
        "/r/acme/db?tab=settings",
        "/account",
        "/orgs",
        "/o/acme",
        "/new",
        "/audit",
        "/o/acme/import",
        "/o/acme/imports",
        "/r/olga/private",
        "/r/nobody/nothing",
    ];
    let mut violations = Vec::new();
    for scheme in [Scheme::Light, Scheme::Dark] {
        let browser = Browser::start(scheme).await;
        browser.client.goto(&hub.url("/login")).await.expect("the login page");
        for found in browser.accessibility_violations().await {
            violations.push(format!("{scheme:?} /login: {found}"));
        }
        log_in_as_olga(&browser, &hub, "/", "Explore · imagehub").await;
        for path in pages {
            browser.client.goto(&hub.url(path)).await.expect("open the page");
            for found in browser.accessibility_violations().await {
                violations.push(format!("{scheme:?} {path}: {found}"));
            }
        }
        browser.close().await;
        let browser = Browser::start(scheme).await;
        let admin = ("admin", imagehub_testkit::ADMIN_PASSWORD);
        log_in_as(&browser, &hub, admin, "/admin/users", "Users · imagehub").await;
        for found in browser.accessibility_violations().await {
            violations.push(format!("{scheme:?} /admin/users: {found}"));
        }
        browser.close().await;
    }
    assert!(violations.is_empty(), "axe-core found:\n{}", violations.join("\n"));
}

#[tokio::test]
async fn screenshots_of_the_pages_at_phone_and_desktop_width_light_and_dark() {
    let (hub, _) = hub().await;
    for scheme in [Scheme::Light, Scheme::Dark] {
        let browser = Browser::start(scheme).await;
        let mode = if scheme == Scheme::Light { "light" } else { "dark" };
        // Logged in, so that the edit page can be shown too.
        log_in_as_olga(&browser, &hub, "/", "Explore · imagehub").await;
        for (width, height, device) in [(1280, 900, "desktop"), (390, 844, "phone")] {
            browser.resize(width, height).await;
            for (path, page) in [
                ("/", "explore"),
                ("/r/acme/db", "repository"),
                ("/r/acme/db?tab=tags", "tags"),
                ("/r/acme/tools/-/v1-arm64", "image"),
                ("/r/acme/db/-/v1/edit", "edit"),
                ("/r/acme/db?tab=settings", "settings"),
                ("/account", "account"),
                ("/o/acme", "organization"),
                ("/new", "add"),
                ("/audit", "audit"),
                ("/o/acme/import", "import"),
                ("/o/acme/imports", "imports"),
            ] {
                browser.client.goto(&hub.url(path)).await.expect("open the page");
                browser.screenshot(&format!("{page}-{device}-{mode}")).await;
                let overflow = browser.horizontal_overflow().await;
                assert_eq!(overflow, 0, "{path} is wider than a {device} ({mode})");
            }
        }
        browser.close().await;
    }
}

/// A hub that builds the recipe `hello` (no images, a README) into acme, with one build
/// done.
async fn builds_hub() -> Hub {
    let hub = Hub::start_with(|c| {
        let recipes = c.storage.data_dir.join("recipes");
        let app = recipes.join("applications/hello");
        std::fs::create_dir_all(app.join("latest/manifests")).expect("recipe");
        std::fs::write(app.join("README.md"), "# hello\n\nA small cluster image.\n")
            .expect("readme");
        std::fs::write(
            app.join("latest/Kubefile"),
            "FROM scratch\nCOPY manifests manifests\nCMD [\"kubectl apply -f manifests\"]\n",
        )
        .expect("Kubefile");
        std::fs::write(app.join("latest/manifests/cm.yaml"), "kind: ConfigMap\n")
            .expect("manifest");
        c.build.recipes_dir = Some(recipes);
        c.build.organization = "acme".into();
    });
    let olga = hub.olga_with_public_acme().await;
    let asked = json!({"app": "hello", "version": "1.0"});
    let started = hub.api(&olga, Method::POST, "/api/v1/builds", Some(asked)).await;
    let location = started.expect_status(202, "a build").header("location").expect("URL");
    let job = hub.api(&olga, Method::GET, &format!("{location}?wait=60"), None).await.json();
    assert_eq!(job["state"], "succeeded", "{job}");
    hub
}

#[tokio::test]
async fn the_builds_pages_fit_phones_and_pass_axe_in_light_and_dark() {
    let hub = builds_hub().await;
    let mut violations = Vec::new();
    for scheme in [Scheme::Light, Scheme::Dark] {
        let browser = Browser::start(scheme).await;
        let mode = if scheme == Scheme::Light { "light" } else { "dark" };
        log_in_as_olga(&browser, &hub, "/builds", "Builds · imagehub").await;
        for (width, height, device) in [(1280, 900, "desktop"), (390, 844, "phone")] {
            browser.resize(width, height).await;
            for (path, page) in [("/builds", "builds"), ("/builds/1", "build")] {
                browser.client.goto(&hub.url(path)).await.expect("open the page");
                browser.screenshot(&format!("{page}-{device}-{mode}")).await;
                let overflow = browser.horizontal_overflow().await;
                assert_eq!(overflow, 0, "{path} is wider than a {device} ({mode})");
                for found in browser.accessibility_violations().await {
                    violations.push(format!("{scheme:?} {device} {path}: {found}"));
                }
            }
        }
        browser.close().await;
    }
    assert!(violations.is_empty(), "axe-core found:\n{}", violations.join("\n"));
}
