//! Organizations, the admin pages and "Add an image" over plain HTTP: owners manage
//! members and settings, outsiders see only what they may pull, site admins list and
//! create users and read the audit log, and manifests or a details form go through the
//! apply endpoint's rules.

use reqwest::Method;
use serde_json::json;

use imagehub_testkit::ADMIN_PASSWORD;

use crate::support::hub::{Cred, Hub};
use crate::support::reply::Reply;
use crate::web::{csrf_of, log_in, no_redirects, page_as, session_cookie};

async fn post(hub: &Hub, cookie: &str, path: &str, form: &[(&str, &str)]) -> Reply {
    hub.send(no_redirects().post(hub.url(path)).header("cookie", cookie).form(form)).await
}

async fn post_multipart(hub: &Hub, cookie: &str, form: &[(&str, &str)]) -> Reply {
    let mut multipart = reqwest::multipart::Form::new();
    for (name, value) in form {
        multipart = multipart.text(name.to_string(), value.to_string());
    }
    hub.send(no_redirects().post(hub.url("/new")).header("cookie", cookie).multipart(multipart))
        .await
}

/// Logs `user` in; their session cookie and CSRF token.
async fn session(hub: &Hub, user: &str, password: &str) -> (String, String) {
    let cookie = session_cookie(&log_in(hub, user, password).await);
    let csrf = csrf_of(&page_as(hub, &cookie, "/").await.text());
    (cookie, csrf)
}

#[tokio::test]
async fn a_user_creates_an_organization_and_its_owner_manages_members_and_settings() {
    let hub = Hub::start();
    hub.create_user("olga", "olga-password-1").await;
    hub.create_user("bob", "bob-password-1").await;
    let (cookie, csrf) = session(&hub, "olga", "olga-password-1").await;
    let page = page_as(&hub, &cookie, "/orgs").await.expect_status(200, "my orgs").text();
    assert!(page.contains("You belong to no organization yet"), "{page}");

    let create = [
        ("csrf", csrf.as_str()),
        ("name", "acme"),
        ("visibility", "public"),
        ("description", "<b>Acme</b> builds things"),
    ];
    let created = post(&hub, &cookie, "/orgs", &create).await;
    created.expect_status(303, "created");
    assert_eq!(created.header("location").as_deref(), Some("/o/acme"));
    let taken = post(&hub, &cookie, "/orgs", &create).await.expect_status(400, "taken").text();
    assert!(taken.contains("already taken") && taken.contains("value=\"acme\""), "{taken}");
    let bad = [("csrf", csrf.as_str()), ("name", "Not Valid"), ("visibility", "private")];
    post(&hub, &cookie, "/orgs", &bad).await.expect_status(400, "an invalid name");

    let page = page_as(&hub, &cookie, "/o/acme").await.expect_status(200, "org page").text();
    assert!(page.contains("you are owner") && page.contains("No repositories yet"), "{page}");
    assert!(page.contains("&#60;b&#62;Acme&#60;/b&#62; builds things"), "escaped: {page}");

    let add = [("csrf", csrf.as_str()), ("intent", "member"), ("user", "bob"), ("role", "viewer")];
    post(&hub, &cookie, "/o/acme", &add).await.expect_status(303, "bob added");
    let nobody =
        [("csrf", csrf.as_str()), ("intent", "member"), ("user", "nobody"), ("role", "viewer")];
    let refused = post(&hub, &cookie, "/o/acme", &nobody).await;
    assert!(refused.expect_status(400, "no such user").text().contains("There is no user"));
    let promote =
        [("csrf", csrf.as_str()), ("intent", "member"), ("user", "bob"), ("role", "developer")];
    post(&hub, &cookie, "/o/acme", &promote).await.expect_status(303, "bob promoted");
    let members = hub.api(&Cred::admin(), Method::GET, "/api/v1/orgs/acme/members", None).await;
    let members = members.expect_status(200, "members").json();
    let bob = members["members"].as_array().unwrap().iter().find(|m| m["user"] == "bob").cloned();
    assert_eq!(bob.unwrap()["role"], "developer", "{members}");

    let leave = [("csrf", csrf.as_str()), ("intent", "remove"), ("user", "olga")];
    let last = post(&hub, &cookie, "/o/acme", &leave).await;
    assert!(last.expect_status(409, "last owner").text().contains("keeps at least one owner"));

    let settings = [
        ("csrf", csrf.as_str()),
        ("intent", "settings"),
        ("visibility", "private"),
        ("description", "Now private"),
    ];
    post(&hub, &cookie, "/o/acme", &settings).await.expect_status(303, "settings saved");
    let long = "x".repeat(1001);
    let too_long = [
        ("csrf", csrf.as_str()),
        ("intent", "settings"),
        ("visibility", "public"),
        ("description", long.as_str()),
    ];
    let refused = post(&hub, &cookie, "/o/acme", &too_long).await;
    assert!(refused.expect_status(400, "too long").text().contains("at most 1000 characters"));
    let body = json!({"name": "longdesc", "description": long});
    let olga = Cred::basic("olga", "olga-password-1");
    let api = hub.api(&olga, Method::POST, "/api/v1/orgs", Some(body)).await;
    api.expect_status(400, "the API refuses it too");
    let org = hub.api(&Cred::admin(), Method::GET, "/api/v1/orgs/acme", None).await.json();
    assert_eq!(
        (org["default_visibility"].as_str(), org["description"].as_str()),
        (Some("private"), Some("Now private"))
    );

    // Bob, a developer now, sees the members but no forms to change them.
    let (bob_cookie, bob_csrf) = session(&hub, "bob", "bob-password-1").await;
    let page = page_as(&hub, &bob_cookie, "/o/acme").await.expect_status(200, "bob's view").text();
    assert!(page.contains("you are developer") && !page.contains("Add a member"), "{page}");
    let grab =
        [("csrf", bob_csrf.as_str()), ("intent", "member"), ("user", "bob"), ("role", "owner")];
    post(&hub, &bob_cookie, "/o/acme", &grab).await.expect_status(403, "not an owner");
    let remove = [("csrf", bob_csrf.as_str()), ("intent", "remove"), ("user", "bob")];
    post(&hub, &cookie, "/o/acme", &remove)
        .await
        .expect_status(403, "bob's token in olga's session");
    let remove = [("csrf", csrf.as_str()), ("intent", "remove"), ("user", "bob")];
    post(&hub, &cookie, "/o/acme", &remove).await.expect_status(303, "bob removed");
    page_as(&hub, &bob_cookie, "/o/acme").await.expect_status(404, "bob is out, acme is empty");
}

#[tokio::test]
async fn an_organization_page_shows_outsiders_only_what_they_may_pull() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    hub.push_with_readme(&olga, "acme/site", "v1", "# Site").await;
    hub.push_with_readme(&olga, "acme/secret", "v1", "# Secret").await;
    let settings = json!({"visibility": "private"});
    hub.api(&olga, Method::PATCH, "/api/v1/orgs/acme/repos/secret", Some(settings))
        .await
        .expect_status(200, "made private");
    hub.create_user("mallory", "mallory-password-1").await;
    let (mallory, csrf) = session(&hub, "mallory", "mallory-password-1").await;
    let (olga_cookie, _) = session(&hub, "olga", "olga-password-1").await;

    let anonymous = hub.send(hub.client.get(hub.url("/o/acme"))).await;
    let outsider = page_as(&hub, &mallory, "/o/acme").await;
    for (who, page) in [("anonymous", anonymous), ("an outsider", outsider)] {
        let page = page.expect_status(200, who).text();
        assert!(page.contains("acme/site"), "{who}: {page}");
        assert!(!page.contains("acme/secret") && !page.contains("Members"), "{who}: {page}");
    }
    let member = page_as(&hub, &olga_cookie, "/o/acme").await.text();
    assert!(member.contains("acme/secret") && member.contains("Members"), "{member}");

    // A namespace with nothing to see does not exist for them, private or absent.
    hub.push_with_readme(&olga, "olga/mine", "v1", "# Mine").await;
    page_as(&hub, &mallory, "/o/olga").await.expect_status(404, "a private namespace");
    page_as(&hub, &mallory, "/o/nothing").await.expect_status(404, "no such namespace");
    let add =
        [("csrf", csrf.as_str()), ("intent", "member"), ("user", "mallory"), ("role", "owner")];
    post(&hub, &mallory, "/o/acme", &add).await.expect_status(403, "an outsider's change");
    let page = page_as(&hub, &mallory, "/orgs").await.text();
    assert!(!page.contains("/o/acme"), "not her organization: {page}");
}

#[tokio::test]
async fn site_admins_list_and_create_users_and_read_the_audit_log_by_action() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    let (admin, csrf) = session(&hub, "admin", ADMIN_PASSWORD).await;
    let page = page_as(&hub, &admin, "/").await.text();
    assert!(page.contains("href=\"/admin/users\""), "admins get the link");
    let users = page_as(&hub, &admin, "/admin/users").await.expect_status(200, "users").text();
    assert!(users.contains(">olga<") && users.contains(">admin<"), "{users}");

    let create =
        [("csrf", csrf.as_str()), ("name", "zed"), ("email", ""), ("password", "zed-password-1")];
    post(&hub, &admin, "/admin/users", &create).await.expect_status(303, "zed created");
    session(&hub, "zed", "zed-password-1").await;
    let again = post(&hub, &admin, "/admin/users", &create).await;
    assert!(again.expect_status(400, "taken").text().contains("already taken"));
    let short = [("csrf", csrf.as_str()), ("name", "amy"), ("password", "x")];
    post(&hub, &admin, "/admin/users", &short).await.expect_status(400, "too short a password");

    let log = page_as(&hub, &admin, "/audit?action=user.create").await;
    let log = log.expect_status(200, "audit").text();
    assert!(
        log.contains(">zed<") && log.contains(">olga<") && !log.contains("org.create</code>"),
        "{log}"
    );
    page_as(&hub, &admin, "/audit?action=nonsense").await.expect_status(400, "unknown action");
    let api = hub.api(&Cred::admin(), Method::GET, "/api/v1/audit?action=org.create", None).await;
    let events = api.expect_status(200, "api audit").json();
    assert_eq!(events["events"].as_array().map(Vec::len), Some(1), "{events}");
    let api = hub.api(&Cred::admin(), Method::GET, "/api/v1/users?limit=2", None).await.json();
    assert_eq!(api["users"].as_array().map(Vec::len), Some(2), "{api}");

    // Olga owns acme: she reads its events but not the users.
    let (olga_cookie, olga_csrf) = session(&hub, "olga", "olga-password-1").await;
    page_as(&hub, &olga_cookie, "/admin/users").await.expect_status(403, "not an admin");
    let create = [("csrf", olga_csrf.as_str()), ("name", "eve"), ("password", "eve-password-1")];
    post(&hub, &olga_cookie, "/admin/users", &create).await.expect_status(403, "not an admin");
    let log = page_as(&hub, &olga_cookie, "/audit").await.expect_status(200, "owner").text();
    assert!(
        log.contains("<code>org.create</code>") && !log.contains("<code>user.create</code>"),
        "{log}"
    );
    hub.api(&olga, Method::GET, "/api/v1/users", None)
        .await
        .expect_status(403, "api: not an admin");
    hub.create_user("mallory", "mallory-password-1").await;
    let (mallory, _) = session(&hub, "mallory", "mallory-password-1").await;
    page_as(&hub, &mallory, "/audit").await.expect_status(403, "owns nothing");
    let anonymous = hub.send(no_redirects().get(hub.url("/admin/users"))).await;
    anonymous.expect_status(303, "to the login");
}

#[tokio::test]
async fn add_an_image_from_manifests_or_a_form_with_the_apply_rules() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    let (cookie, csrf) = session(&hub, "olga", "olga-password-1").await;
    page_as(&hub, &cookie, "/new").await.expect_status(200, "the form");

    let yaml = "apiVersion: imagehub.sealos.io/v1
kind: Organization
spec:
  name: tools
  description: Our tools
---
apiVersion: imagehub.sealos.io/v1
kind: Image
spec:
  name: acme/lint:v1
  detail:
    description: A linter
    keywords: [lint]
";
    let form = [("csrf", csrf.as_str()), ("intent", "yaml"), ("yaml", yaml)];
    let done = post_multipart(&hub, &cookie, &form).await.expect_status(200, "applied").text();
    assert!(done.contains("href=\"/o/tools\"") && done.contains(">created<"), "{done}");
    assert!(done.contains("acme/lint:v1") && done.contains(">changed<"), "{done}");
    let again = post_multipart(&hub, &cookie, &form).await.expect_status(200, "again").text();
    assert!(!again.contains(">created<") && again.contains(">unchanged<"), "{again}");

    // Details for a tag not pushed yet wait for it, in the API's export.
    let form = [
        ("csrf", csrf.as_str()),
        ("intent", "details"),
        ("image", "acme/web"),
        ("tag", "v2"),
        ("description", "The web front"),
        ("keywords", "web, front"),
    ];
    post_multipart(&hub, &cookie, &form).await.expect_status(200, "details saved");
    let export = hub.api(&olga, Method::GET, "/api/v1/export?kind=Image&org=acme", None).await;
    let export = export.expect_status(200, "export").text();
    assert!(export.contains("acme/web:v2") && export.contains("The web front"), "{export}");
    hub.push_with_readme(&olga, "acme/web", "v2", "# Web").await;
    let page = page_as(&hub, &cookie, "/r/acme/web").await.text();
    assert!(page.contains("The web front"), "the waiting details apply: {page}");

    // One bad document: nothing applied, the problem named, the text kept.
    let bad = format!(
        "{yaml}---\napiVersion: imagehub.sealos.io/v1\nkind: Image\nspec:\n  name: tools/x:v1\n  detail:\n    icon: javascript:alert(1)\n"
    );
    let bad = bad.replace("Our tools", "Changed");
    let form = [("csrf", csrf.as_str()), ("intent", "yaml"), ("yaml", bad.as_str())];
    let refused = post_multipart(&hub, &cookie, &form).await.expect_status(400, "bad icon").text();
    assert!(refused.contains("document 3: spec.detail.icon"), "{refused}");
    assert!(refused.contains("Changed"), "the text is kept: {refused}");
    let org = hub.api(&olga, Method::GET, "/api/v1/orgs/tools", None).await.json();
    assert_eq!(org["description"], "Our tools", "nothing applied");
    let form = [
        ("csrf", csrf.as_str()),
        ("intent", "details"),
        ("image", "acme/web"),
        ("tag", "v2"),
        ("url", "ftp://x"),
    ];
    let refused = post_multipart(&hub, &cookie, &form).await.expect_status(400, "bad url").text();
    assert!(refused.contains("url: "), "{refused}");
    let form = [("csrf", csrf.as_str()), ("intent", "details"), ("image", "web"), ("tag", "v2")];
    let refused =
        post_multipart(&hub, &cookie, &form).await.expect_status(400, "no namespace").text();
    assert!(refused.contains("Image and tag:"), "{refused}");

    // A "billion laughs" document (nine aliases of nine aliases, ten deep: 3.5e9 nodes)
    // is refused, not expanded, on the page and on the API.
    let mut laughs = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..=10 {
        let refs = vec![format!("*l{}", level - 1); 9].join(", ");
        laughs.push_str(&format!("l{level}: &l{level} [{refs}]\n"));
    }
    let form = [("csrf", csrf.as_str()), ("intent", "yaml"), ("yaml", laughs.as_str())];
    post_multipart(&hub, &cookie, &form).await.expect_status(400, "laughs on the page");
    let apply =
        hub.client.post(hub.url("/api/v1/apply")).basic_auth("olga", Some("olga-password-1"));
    let apply = hub.send(apply.header("content-type", "application/yaml").body(laughs)).await;
    apply.expect_status(400, "laughs on the API");

    // Rights and forms: another's namespace, a forged token, an empty or oversized form.
    hub.create_user("mallory", "mallory-password-1").await;
    let (mallory, mallory_csrf) = session(&hub, "mallory", "mallory-password-1").await;
    let form = [
        ("csrf", mallory_csrf.as_str()),
        ("intent", "details"),
        ("image", "acme/web"),
        ("tag", "v2"),
        ("description", "pwned"),
    ];
    post_multipart(&hub, &mallory, &form).await.expect_status(403, "not hers");
    let form = [("csrf", "forged"), ("intent", "yaml"), ("yaml", yaml)];
    post_multipart(&hub, &cookie, &form).await.expect_status(403, "forged");
    let form = [("csrf", csrf.as_str()), ("intent", "yaml"), ("yaml", " ")];
    post_multipart(&hub, &cookie, &form).await.expect_status(400, "empty");
    // Just over the limit, so the client has sent it all when the answer comes.
    let huge = "#".repeat((4 << 20) + 1);
    let form = [("csrf", csrf.as_str()), ("intent", "yaml"), ("yaml", huge.as_str())];
    post_multipart(&hub, &cookie, &form).await.expect_status(413, "oversized");
    let export = hub.api(&olga, Method::GET, "/api/v1/export?kind=Image&org=acme", None).await;
    assert!(!export.text().contains("pwned"));
}

#[tokio::test]
async fn a_site_admin_lists_every_organization_with_their_own_role_in_each() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    hub.api(&Cred::admin(), Method::POST, "/api/v1/orgs", Some(json!({"name": "ops"})))
        .await
        .expect_status(201, "the admin's own organization");
    let listed = hub.api(&Cred::admin(), Method::GET, "/api/v1/orgs", None).await;
    let listed = listed.expect_status(200, "every organization").json();
    assert_eq!(listed["orgs"][0]["name"], "acme", "{listed}");
    assert_eq!(listed["orgs"][0]["role"], serde_json::Value::Null, "not a member: {listed}");
    assert_eq!(listed["orgs"][1]["name"], "ops", "{listed}");
    assert_eq!(listed["orgs"][1]["role"], "owner", "{listed}");
    let theirs = hub.api(&olga, Method::GET, "/api/v1/orgs", None).await;
    let theirs = theirs.expect_status(200, "olga's").json();
    assert_eq!(theirs["orgs"].as_array().map(Vec::len), Some(1), "{theirs}");
    assert_eq!(theirs["orgs"][0]["role"], "owner", "{theirs}");
}
