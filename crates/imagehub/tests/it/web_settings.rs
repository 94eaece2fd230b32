//! A repository's settings tab over plain HTTP: owners change visibility and
//! description and delete with the name typed out; nobody else sees or posts them. And
//! the account page, where a password is changed.

use reqwest::Method;

use crate::support::hub::{Cred, Hub};
use crate::support::reply::Reply;
use crate::web::{csrf_of, log_in, no_redirects, page_as, session_cookie};

async fn post(hub: &Hub, cookie: &str, path: &str, form: &[(&str, &str)]) -> Reply {
    hub.send(no_redirects().post(hub.url(path)).header("cookie", cookie).form(form)).await
}

#[tokio::test]
async fn owners_change_visibility_and_description_and_delete_with_the_name_typed() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    hub.push_with_readme(&olga, "acme/db", "v1", "# DB").await;
    let cookie = session_cookie(&log_in(&hub, "olga", "olga-password-1").await);
    let html = page_as(&hub, &cookie, "/r/acme/db?tab=settings").await;
    let html = html.expect_status(200, "the settings tab").text();
    assert!(html.contains("value=\"public\" checked"), "{html}");
    let csrf = csrf_of(&html);

    let form = [
        ("csrf", csrf.as_str()),
        ("intent", "settings"),
        ("visibility", "private"),
        ("description", "Our database"),
    ];
    let saved = post(&hub, &cookie, "/r/acme/db", &form).await;
    saved.expect_status(303, "saved");
    assert_eq!(saved.header("location").as_deref(), Some("/r/acme/db?tab=settings"));
    hub.send(hub.client.get(hub.url("/r/acme/db"))).await.expect_status(404, "private now");
    let repo = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/db", None).await.json();
    assert_eq!(repo["visibility"], "private");
    assert_eq!(repo["description"], "Our database");
    let page = page_as(&hub, &cookie, "/r/acme/db").await.text();
    assert!(page.contains("Our database") && page.contains("badge-private"), "{page}");

    let long = "x".repeat(1001);
    let form = [
        ("csrf", csrf.as_str()),
        ("intent", "settings"),
        ("visibility", "public"),
        ("description", long.as_str()),
    ];
    post(&hub, &cookie, "/r/acme/db", &form).await.expect_status(400, "too long a description");
    let form = [("csrf", csrf.as_str()), ("intent", "settings"), ("visibility", "secret")];
    post(&hub, &cookie, "/r/acme/db", &form).await.expect_status(400, "no such visibility");

    let wrong = [("csrf", csrf.as_str()), ("intent", "delete"), ("confirm", "acme/d")];
    let refused = post(&hub, &cookie, "/r/acme/db", &wrong).await;
    assert!(refused.expect_status(400, "a wrong name").text().contains("Nothing was deleted"));
    page_as(&hub, &cookie, "/r/acme/db").await.expect_status(200, "still there");
    let right = [("csrf", csrf.as_str()), ("intent", "delete"), ("confirm", "acme/db")];
    let deleted = post(&hub, &cookie, "/r/acme/db", &right).await;
    deleted.expect_status(303, "deleted");
    page_as(&hub, &cookie, "/r/acme/db").await.expect_status(404, "gone");
}

#[tokio::test]
async fn nobody_but_owners_sees_or_posts_the_settings() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    hub.push_with_readme(&olga, "acme/db", "v1", "# DB").await;
    hub.push_with_readme(&olga, "olga/private", "v1", "# Mine").await;
    hub.create_user("mallory", "mallory-password-1").await;
    let cookie = session_cookie(&log_in(&hub, "mallory", "mallory-password-1").await);
    let olga_cookie = session_cookie(&log_in(&hub, "olga", "olga-password-1").await);
    let csrf = csrf_of(&page_as(&hub, &cookie, "/").await.text());

    let page = page_as(&hub, &cookie, "/r/acme/db").await.text();
    assert!(!page.contains("?tab=settings"), "no settings tab for an outsider");
    page_as(&hub, &cookie, "/r/acme/db?tab=settings").await.expect_status(403, "outsider");
    hub.send(hub.client.get(hub.url("/r/acme/db?tab=settings")))
        .await
        .expect_status(403, "anonymous");
    page_as(&hub, &cookie, "/r/olga/private?tab=settings").await.expect_status(404, "private");

    let public = [("csrf", csrf.as_str()), ("intent", "settings"), ("visibility", "private")];
    post(&hub, &cookie, "/r/acme/db", &public).await.expect_status(403, "an outsider's change");
    let delete = [("csrf", csrf.as_str()), ("intent", "delete"), ("confirm", "acme/db")];
    post(&hub, &cookie, "/r/acme/db", &delete).await.expect_status(403, "an outsider's delete");
    let private = [("csrf", csrf.as_str()), ("intent", "delete"), ("confirm", "olga/private")];
    post(&hub, &cookie, "/r/olga/private", &private).await.expect_status(404, "hidden");
    // Olga's session without its token: a cross-site post changes nothing.
    let forged = [("csrf", "forged"), ("intent", "delete"), ("confirm", "acme/db")];
    post(&hub, &olga_cookie, "/r/acme/db", &forged).await.expect_status(403, "forged");
    let repo = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/db", None).await;
    assert_eq!(repo.expect_status(200, "still there").json()["visibility"], "public");
}

#[tokio::test]
async fn a_password_is_changed_with_the_current_one_and_ends_the_sessions() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    hub.push_with_readme(&olga, "olga/private", "v1", "# Mine").await;
    let cookie = session_cookie(&log_in(&hub, "olga", "olga-password-1").await);
    let anonymous = hub.send(no_redirects().get(hub.url("/account"))).await;
    assert_eq!(
        anonymous.expect_status(303, "log in first").header("location").as_deref(),
        Some("/login?next=/account")
    );
    let html = page_as(&hub, &cookie, "/account").await.expect_status(200, "the account").text();
    let csrf = csrf_of(&html);
    let change = |current: &'static str, new: &'static str, repeat: &'static str| {
        [
            ("csrf", csrf.as_str()),
            ("intent", "password"),
            ("current", current),
            ("new", new),
            ("repeat", repeat),
        ]
    };

    let wrong =
        post(&hub, &cookie, "/account", &change("guess", "new-password-2", "new-password-2")).await;
    assert!(
        wrong
            .expect_status(400, "a wrong current password")
            .text()
            .contains("current password is wrong")
    );
    let differ = post(
        &hub,
        &cookie,
        "/account",
        &change("olga-password-1", "new-password-2", "new-password-3"),
    )
    .await;
    assert!(differ.expect_status(400, "a typo").text().contains("differ"));
    let forged = [
        ("csrf", "forged"),
        ("intent", "password"),
        ("current", "olga-password-1"),
        ("new", "x-password-9"),
        ("repeat", "x-password-9"),
    ];
    post(&hub, &cookie, "/account", &forged).await.expect_status(403, "a cross-site post");
    page_as(&hub, &cookie, "/r/olga/private").await.expect_status(200, "nothing changed yet");

    let done = post(
        &hub,
        &cookie,
        "/account",
        &change("olga-password-1", "new-password-2", "new-password-2"),
    )
    .await;
    done.expect_status(303, "changed");
    page_as(&hub, &cookie, "/r/olga/private").await.expect_status(404, "the session ended");
    log_in(&hub, "olga", "olga-password-1").await.expect_status(401, "the old password");
    log_in(&hub, "olga", "new-password-2").await.expect_status(303, "the new one");
}

#[tokio::test]
async fn tokens_are_created_shown_once_and_revoked_on_the_account_page() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    let cookie = session_cookie(&log_in(&hub, "olga", "olga-password-1").await);
    let csrf = csrf_of(&page_as(&hub, &cookie, "/account").await.text());
    let create = [
        ("csrf", csrf.as_str()),
        ("intent", "token"),
        ("token_name", "<b>ci</b>"),
        ("scope", "pull"),
        ("scope", "push"),
        ("namespaces", "acme"),
        ("expires_days", "30"),
    ];
    let created = post(&hub, &cookie, "/account", &create).await;
    let html = created.expect_status(200, "created").text();
    let marker = "id=\"new-token\" readonly value=\"";
    let start = html.find(marker).expect("the secret, once") + marker.len();
    let secret = html[start..].split('"').next().expect("its end").to_string();
    assert!(html.contains("&#60;b&#62;ci&#60;/b&#62;") && !html.contains("<b>ci"), "escaped");
    let tokens = hub.api(&olga, Method::GET, "/api/v1/user/tokens", None).await.json();
    let token = &tokens["tokens"][0];
    assert_eq!(token["scopes"], serde_json::json!(["pull", "push"]), "{tokens}");
    assert_eq!(token["namespaces"], serde_json::json!(["acme"]));
    let secret_works = Cred::basic("olga", &secret);
    hub.api(&secret_works, Method::GET, "/api/v1/orgs/acme/repos", None)
        .await
        .expect_status(200, "the secret is a working token");
    let again = page_as(&hub, &cookie, "/account").await.text();
    assert!(!again.contains(&secret), "shown once, never again");

    let bad = [
        ("csrf", csrf.as_str()),
        ("intent", "token"),
        ("token_name", "x"),
        ("expires_days", "soon"),
        ("scope", "pull"),
    ];
    post(&hub, &cookie, "/account", &bad).await.expect_status(400, "a bad expiry");
    let none = [("csrf", csrf.as_str()), ("intent", "token"), ("token_name", "y")];
    post(&hub, &cookie, "/account", &none).await.expect_status(400, "no scope");

    let id = token["id"].to_string();
    let forged = [("csrf", "forged"), ("intent", "revoke"), ("id", id.as_str())];
    post(&hub, &cookie, "/account", &forged).await.expect_status(403, "a forged revoke");
    let revoke = [("csrf", csrf.as_str()), ("intent", "revoke"), ("id", id.as_str())];
    post(&hub, &cookie, "/account", &revoke).await.expect_status(303, "revoked");
    hub.api(&secret_works, Method::GET, "/api/v1/orgs/acme/repos", None)
        .await
        .expect_status(401, "the token no longer works");
    post(&hub, &cookie, "/account", &revoke).await.expect_status(404, "twice");
}
