//! Managing the hub in a real browser: an organization is created and given a member,
//! a token is created and revoked, manifests are added from pasted and uploaded YAML;
//! and an outsider or an anonymous visitor never sees a private repository anywhere.

use fantoccini::Locator;
use reqwest::Method;
use serde_json::json;

use crate::browser::{hub, log_in_as, log_in_as_olga};
use crate::support::browser::{Browser, Scheme};
use crate::support::hub::{Cred, Hub};

/// Types `text` into the field with id `id`.
async fn fill(browser: &Browser, id: &str, text: &str) {
    let field = browser.client.find(Locator::Id(id)).await.expect("the field");
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

/// Waits for an element matching `xpath`.
async fn wait_for(browser: &Browser, xpath: &str) {
    browser
        .client
        .wait()
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("{xpath}: {e}"));
}

#[tokio::test]
async fn an_organization_is_created_and_given_a_member() {
    let (hub, _) = hub().await;
    hub.create_user("bob", "bob-password-1").await;
    let browser = Browser::start(Scheme::Light).await;
    log_in_as_olga(&browser, &hub, "/", "Explore · imagehub").await;
    browser.click_to(Locator::LinkText("Organizations"), "Your organizations · imagehub").await;
    fill(&browser, "org-name", "tools").await;
    fill(&browser, "org-description", "Our tools").await;
    browser.click_to(Locator::Css("input[value=public]"), "Your organizations · imagehub").await;
    browser.click_to(Locator::Css("form[action='/orgs'] button"), "tools · imagehub").await;

    fill(&browser, "new-member", "bob").await;
    let add = browser.client.find(Locator::XPath("//button[text()='Add member']")).await;
    add.expect("the add button").click().await.expect("add");
    wait_for(&browser, "//table[@class='members']//th[text()='bob']").await;
    let org = hub.api(&Cred::admin(), Method::GET, "/api/v1/orgs/tools/members", None).await;
    let members = org.expect_status(200, "members").json();
    let bob = members["members"].as_array().unwrap().iter().find(|m| m["user"] == "bob").cloned();
    assert_eq!(bob.expect("bob is a member")["role"], "developer", "{members}");
    let org = hub.api(&Cred::admin(), Method::GET, "/api/v1/orgs/tools", None).await.json();
    assert_eq!(org["default_visibility"], "public", "{org}");
    browser.close().await;
}

#[tokio::test]
async fn a_token_is_created_shown_once_and_revoked() {
    let (hub, _) = hub().await;
    let browser = Browser::start(Scheme::Light).await;
    let client = &browser.client;
    log_in_as_olga(&browser, &hub, "/account", "Your account · imagehub").await;
    fill(&browser, "token_name", "ci").await;
    let create = client.find(Locator::XPath("//button[text()='Create token']")).await;
    create.expect("the create button").click().await.expect("create");
    let secret = client.wait().for_element(Locator::Id("new-token")).await.expect("the secret");
    let secret = secret.prop("value").await.expect("its value").expect("a value");
    let token = Cred::basic("olga", &secret);
    hub.api(&token, Method::GET, "/api/v1/user", None).await.expect_status(200, "the token works");

    client.goto(&hub.url("/account")).await.expect("the page again");
    assert!(!client.source().await.expect("source").contains(&secret), "shown once");
    let revoke = client.find(Locator::XPath("//button[starts-with(., 'Revoke')]")).await;
    revoke.expect("revoke").click().await.expect("revoke");
    let asked = client.get_alert_text().await.expect("a confirmation");
    assert!(asked.contains("Revoke the token ci?"), "{asked}");
    client.accept_alert().await.expect("confirm");
    wait_for(&browser, "//p[text()='You have no access tokens.']").await;
    let refused = hub.api(&token, Method::GET, "/api/v1/user", None).await;
    refused.expect_status(401, "revoked");
    browser.close().await;
}

#[tokio::test]
async fn manifests_are_added_from_pasted_and_uploaded_yaml() {
    let (hub, olga) = hub().await;
    let browser = Browser::start(Scheme::Light).await;
    let client = &browser.client;
    log_in_as_olga(&browser, &hub, "/", "Explore · imagehub").await;
    browser.click_to(Locator::LinkText("Add image"), "Add an image · imagehub").await;
    let yaml = "apiVersion: imagehub.sealos.io/v1\nkind: Image\nspec:\n  name: acme/cache:v1\n  detail:\n    description: A cache\n";
    fill(&browser, "yaml", yaml).await;
    let apply = client.find(Locator::XPath("//button[text()='Apply']")).await;
    apply.expect("apply").click().await.expect("apply");
    wait_for(&browser, "//section[@class='applied']//code[text()='acme/cache:v1']").await;

    let file = tempfile::Builder::new().suffix(".yaml").tempfile().expect("a file");
    let org = "apiVersion: imagehub.sealos.io/v1\nkind: Organization\nspec:\n  name: uploaded\n";
    std::fs::write(file.path(), org).expect("write it");
    let path = file.path().to_str().expect("a UTF-8 path");
    client
        .find(Locator::Id("file"))
        .await
        .expect("the file input")
        .send_keys(path)
        .await
        .expect("choose");
    let apply = client.find(Locator::XPath("//button[text()='Apply']")).await;
    apply.expect("apply").click().await.expect("apply");
    wait_for(&browser, "//section[@class='applied']//a[@href='/o/uploaded']").await;

    let export = hub.api(&olga, Method::GET, "/api/v1/export?kind=Image&org=acme", None).await;
    assert!(export.text().contains("A cache"), "{}", export.text());
    let org = hub.api(&olga, Method::GET, "/api/v1/orgs/uploaded", None).await;
    org.expect_status(200, "created from the upload");
    browser.close().await;
}

#[tokio::test]
async fn outsiders_and_anonymous_visitors_never_see_a_private_repository() {
    let (hub, olga) = hub().await;
    hub.api(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/db",
        Some(json!({"visibility": "private"})),
    )
    .await
    .expect_status(200, "acme/db made private");
    hub.create_user("mallory", "mallory-password-1").await;
    for outsider in [None, Some(("mallory", "mallory-password-1"))] {
        let browser = Browser::start(Scheme::Light).await;
        if let Some(credentials) = outsider {
            log_in_as(&browser, &hub, credentials, "/", "Explore · imagehub").await;
        }
        let who = outsider.map_or("anonymous", |(name, _)| name);
        see_no_private_repository(&browser, &hub, who).await;
        browser.close().await;
    }
}

async fn see_no_private_repository(browser: &Browser, hub: &Hub, who: &str) {
    let client = &browser.client;
    let listings = [
        ("/", true),
        ("/?sort=name", true),
        ("/o/acme", true),
        ("/?q=db", false),
        ("/?q=private", false),
        ("/?keyword=database", false),
    ];
    for (path, lists_public_ones) in listings {
        client.goto(&hub.url(path)).await.expect("a listing");
        let source = client.source().await.expect("source");
        if lists_public_ones {
            assert!(source.contains("acme/app"), "{who} {path}: public ones listed: {source}");
        }
        for private in ["acme/db", "olga/private"] {
            assert!(!source.contains(private), "{who} {path} shows {private}");
        }
    }
    for path in
        ["/r/acme/db", "/r/acme/db?tab=tags", "/r/acme/db/-/v1", "/r/olga/private", "/o/olga"]
    {
        client.goto(&hub.url(path)).await.expect("a page");
        assert_eq!(client.title().await.expect("title"), "Not found · imagehub", "{who} {path}");
    }
}

#[tokio::test]
async fn an_image_is_imported_from_the_organization_page_with_live_progress() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream =
        crate::support::distribution::Distribution::start(&dir.path().join("storage"), None);
    let registry = crate::support::registry::Registry::at(&upstream.url());
    crate::imports::push_index(&registry, "team/multi", "v2").await;
    let host = upstream.host.clone();
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![host]);
    hub.olga_with_public_acme().await;
    for scheme in [Scheme::Light, Scheme::Dark] {
        let browser = Browser::start(scheme).await;
        let mode = if scheme == Scheme::Light { "light" } else { "dark" };
        log_in_as_olga(&browser, &hub, "/o/acme", "acme · imagehub").await;
        browser.click_to(Locator::LinkText("Import an image"), "Import into acme · imagehub").await;
        fill(&browser, "source", &format!("{}/team/multi:v2", upstream.host)).await;
        fill(&browser, "target_image", &format!("multi-{mode}")).await;
        let check = browser.client.find(Locator::Css("button[value=check]")).await.expect("check");
        check.click().await.expect("check the source");
        wait_for(&browser, "//input[@name='platform' and @value='linux/arm64']").await;
        browser.screenshot(&format!("import-checked-desktop-{mode}")).await;
        let import =
            browser.client.find(Locator::Css("button[value=import]")).await.expect("import");
        import.click().await.expect("import");
        browser.wait_for_title("Imports of acme · imagehub").await;
        // The script keeps the list current until the job ends.
        wait_for(
            &browser,
            &format!("//tr[.//a[text()='acme/multi-{mode}:v2']]//span[text()='succeeded']"),
        )
        .await;
        browser.screenshot(&format!("imports-jobs-desktop-{mode}")).await;
        browser.close().await;
    }
}
