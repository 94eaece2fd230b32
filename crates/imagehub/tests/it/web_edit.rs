//! Editing an image's details in the web UI over plain HTTP: the form shows where each
//! value comes from, saves through the same rules as the API, previews without saving,
//! resets a field to the image's value, and refuses forged, anonymous and outside posts.

use reqwest::Method;
use serde_json::Value;

use crate::support::hub::{Cred, Hub};
use crate::support::reply::Reply;
use crate::web::{csrf_of, log_in, no_redirects, page_as, session_cookie};

const README: &str = "---\ndescription: From the README\nkeywords: [db]\n---\n# DB\n";

async fn post_form(hub: &Hub, cookie: &str, path: &str, form: &[(&str, &str)]) -> Reply {
    hub.send(no_redirects().post(hub.url(path)).header("cookie", cookie).form(form)).await
}

async fn details(hub: &Hub, olga: &Cred) -> Value {
    hub.api(olga, Method::GET, "/api/v1/orgs/acme/repos/db/images/v1", None)
        .await
        .expect_status(200, "the image")
        .json()["details"]
        .clone()
}

#[tokio::test]
async fn details_are_edited_previewed_and_reset_through_the_form() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    hub.push_with_readme(&olga, "acme/db", "v1", README).await;
    let cookie = session_cookie(&log_in(&hub, "olga", "olga-password-1").await);
    let path = "/r/acme/db/-/v1/edit";

    let repository = page_as(&hub, &cookie, "/r/acme/db").await.text();
    assert!(repository.contains(&format!("href=\"{path}\"")), "an edit link: {repository}");
    let form = page_as(&hub, &cookie, path).await.expect_status(200, "the form").text();
    assert!(form.contains(">From the README</textarea>"), "the current value: {form}");
    assert!(form.contains("Now from <strong>the README in the image</strong>"), "{form}");
    let csrf = csrf_of(&form);

    let hostile = "# Hello\n\n<script>alert(1)</script><img src=x onerror=alert(2)>";
    let preview = post_form(
        &hub,
        &cookie,
        path,
        &[("csrf", &csrf), ("description", "Previewed"), ("docs", hostile), ("action", "preview")],
    )
    .await
    .expect_status(200, "a preview")
    .text();
    let start = preview.find("<section class=\"preview\"").expect("a preview section");
    let rendered = &preview[start..start + preview[start..].find("</section>").expect("its end")];
    assert!(rendered.contains("<h1 id=\"user-content-hello\">Hello</h1>"), "{rendered}");
    assert!(!rendered.contains("<script") && !rendered.contains("onerror"), "{rendered}");
    assert!(!preview.contains("<script>alert"), "the textarea escapes it too");
    assert_eq!(details(&hub, &olga).await["description"], "From the README", "nothing saved");

    let bad = [("csrf", csrf.as_str()), ("icon", "javascript:alert(1)"), ("action", "save")];
    let refused = post_form(&hub, &cookie, path, &bad).await;
    let html = refused.expect_status(400, "a bad icon").text();
    assert!(html.contains("aria-invalid=\"true\"") && html.contains("class=\"problem\""), "{html}");
    assert!(html.contains("value=\"javascript:alert(1)\""), "the value is kept to fix: {html}");
    assert!(details(&hub, &olga).await.get("icon").is_none(), "nothing saved");

    let saved = post_form(
        &hub,
        &cookie,
        path,
        &[
            ("csrf", &csrf),
            ("description", "Edited in the browser"),
            ("keywords", "db, sql , "),
            ("url", "https://example.com/db"),
            ("docs", "# DB"),
            ("action", "save"),
        ],
    )
    .await;
    saved.expect_status(303, "saved");
    assert_eq!(saved.header("location").as_deref(), Some("/r/acme/db"));
    let now = details(&hub, &olga).await;
    assert_eq!(now["description"], "Edited in the browser");
    assert_eq!(now["keywords"], serde_json::json!(["db", "sql"]));
    assert_eq!(now["url"], "https://example.com/db");
    let page = page_as(&hub, &cookie, "/r/acme/db").await.text();
    assert!(page.contains("Edited in the browser"), "{page}");

    let form = page_as(&hub, &cookie, path).await.text();
    assert!(form.contains("Now from <strong>your edit</strong>"), "{form}");
    assert!(form.contains("name=\"reset_description\""), "a way back: {form}");
    post_form(
        &hub,
        &cookie,
        path,
        &[
            ("csrf", &csrf),
            ("description", "Edited in the browser"),
            ("reset_description", "1"),
            ("url", "https://example.com/db"),
            ("action", "save"),
        ],
    )
    .await
    .expect_status(303, "reset");
    let now = details(&hub, &olga).await;
    assert_eq!(now["description"], "From the README", "the image's value again");
    assert_eq!(now["url"], "https://example.com/db", "other edits stay");
    assert_eq!(now["keywords"], serde_json::json!(["db"]), "an empty field shows the image's");
}

#[tokio::test]
async fn only_those_who_may_push_edit_and_only_with_the_form_token() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    hub.push_with_readme(&olga, "acme/db", "v1", README).await;
    hub.push_with_readme(&olga, "olga/private", "v1", README).await;
    hub.create_user("mallory", "mallory-password-1").await;
    let olga_cookie = session_cookie(&log_in(&hub, "olga", "olga-password-1").await);
    let cookie = session_cookie(&log_in(&hub, "mallory", "mallory-password-1").await);
    let csrf = csrf_of(&page_as(&hub, &cookie, "/").await.text());
    let change = |csrf: &str| {
        vec![
            ("csrf".to_string(), csrf.to_string()),
            ("description".to_string(), "pwned".to_string()),
            ("action".to_string(), "save".to_string()),
        ]
    };

    let anonymous = hub.send(no_redirects().get(hub.url("/r/acme/db/-/v1/edit"))).await;
    anonymous.expect_status(303, "an anonymous visitor is sent to log in");
    assert!(anonymous.header("location").is_some_and(|l| l.starts_with("/login?next=")));
    let repository = page_as(&hub, &cookie, "/r/acme/db").await.text();
    assert!(!repository.contains("Edit details"), "no edit link without push rights");
    page_as(&hub, &cookie, "/r/acme/db/-/v1/edit").await.expect_status(403, "pull, not push");
    page_as(&hub, &cookie, "/r/olga/private/-/v1/edit").await.expect_status(404, "private");
    page_as(&hub, &olga_cookie, "/r/acme/db/-/v9/edit").await.expect_status(404, "no such tag");

    let form: Vec<(String, String)> = change(&csrf);
    hub.send(
        no_redirects().post(hub.url("/r/acme/db/-/v1/edit")).header("cookie", &cookie).form(&form),
    )
    .await
    .expect_status(403, "an outsider's post");
    hub.send(
        no_redirects()
            .post(hub.url("/r/olga/private/-/v1/edit"))
            .header("cookie", &cookie)
            .form(&form),
    )
    .await
    .expect_status(404, "a post to a private image");
    // Olga's own session, but a forged or missing token: a cross-site post.
    for token in ["", "forged"] {
        hub.send(
            no_redirects()
                .post(hub.url("/r/acme/db/-/v1/edit"))
                .header("cookie", &olga_cookie)
                .form(&change(token)),
        )
        .await
        .expect_status(403, "without the session's token");
    }
    hub.send(no_redirects().post(hub.url("/r/acme/db/-/v1/edit")).form(&change("")))
        .await
        .expect_status(403, "without a session");
    hub.send(
        no_redirects()
            .post(hub.url("/r/acme/db/-/v1"))
            .header("cookie", &olga_cookie)
            .form(&change("")),
    )
    .await
    .expect_status(404, "nothing takes a form there");
    let details =
        hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/db/images/v1", None).await.json();
    assert_eq!(details["details"]["description"], "From the README", "nothing changed");
}
