//! The web UI over plain HTTP: pages carry the security headers, show only what the
//! visitor may see, and escape everything users and images typed. (Browser tests come
//! with the pages that need a browser.)

use reqwest::Method;
use serde_json::json;

use crate::support::hub::{Cred, Hub, OCI_MANIFEST, repo_scope, sha256};
use crate::support::reply::Reply;

async fn page(hub: &Hub, path: &str) -> Reply {
    let reply = hub.send(hub.client.get(hub.url(path))).await;
    assert!(
        reply.header("content-type").is_some_and(|t| t.starts_with("text/html")),
        "{path} is a page: {:?}",
        reply.header("content-type")
    );
    expect_security_headers(&reply, path);
    reply
}

#[track_caller]
fn expect_security_headers(reply: &Reply, path: &str) {
    let csp = reply.header("content-security-policy").unwrap_or_default();
    for directive in
        ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]
    {
        assert!(csp.contains(directive), "{path}: CSP {csp:?} lacks {directive:?}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: CSP {csp:?}");
    assert_eq!(reply.header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
    assert_eq!(reply.header("referrer-policy").as_deref(), Some("same-origin"), "{path}");
}

#[tokio::test]
async fn an_empty_hub_explains_how_to_push_to_this_server() {
    let hub = Hub::start();
    let reply = page(&hub, "/").await;
    reply.expect_status(200, "explore");
    let html = reply.text();
    let host = hub.server().host();
    assert!(html.contains("No images yet"), "{html}");
    assert!(
        html.contains(&format!("docker push {host}/NAMESPACE/alpine:3")),
        "the commands name this server: {html}"
    );
    let css = hub.send(hub.client.get(hub.url("/static/style.css"))).await;
    css.expect_status(200, "the stylesheet");
    assert!(css.header("content-type").is_some_and(|t| t.starts_with("text/css")));
    let js = hub.send(hub.client.get(hub.url("/static/app.js"))).await;
    js.expect_status(200, "the script");
    assert!(js.header("content-type").is_some_and(|t| t.starts_with("text/javascript")));
    hub.send(hub.client.get(hub.url("/static/nothing.js")))
        .await
        .expect_status(404, "an unknown asset");
}

#[tokio::test]
async fn explore_shows_what_the_visitor_may_see_and_escapes_what_users_typed() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    hub.api(&olga, Method::POST, "/api/v1/orgs", Some(json!({"name": "hidden"})))
        .await
        .expect_status(201, "a private org");
    let hostile = "---\ndescription: \"<script>alert(1)</script><img src=x onerror=alert(2)>\"\nkeywords: [web, \"<b>x</b>\"]\n---\n# App";
    hub.push_with_readme(&olga, "acme/web", "v1", hostile).await;
    hub.push_with_readme(
        &olga,
        "acme/db",
        "v1",
        "---\ndescription: A database\nkeywords: [sql]\n---\n# DB",
    )
    .await;
    hub.push_with_readme(
        &olga,
        "hidden/secret",
        "v1",
        "---\ndescription: Top secret\n---\n# Secret",
    )
    .await;

    let html = page(&hub, "/").await.expect_status(200, "explore").text();
    assert!(
        html.contains("acme/web") && html.contains("acme/db"),
        "public repositories are listed: {html}"
    );
    assert!(
        !html.contains("hidden/secret") && !html.contains("Top secret"),
        "a private repository is not: {html}"
    );
    assert!(
        !html.contains("<script>alert") && !html.contains("<img src=x"),
        "user text is escaped: {html}"
    );
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "and shown as text: {html}"
    );
    assert!(html.contains("2 repositories"), "{html}");

    let found = page(&hub, "/?q=database").await.expect_status(200, "search").text();
    assert!(found.contains("acme/db") && !found.contains("acme/web"), "{found}");
    let secret =
        page(&hub, "/?q=secret").await.expect_status(200, "search for the private one").text();
    assert!(secret.contains("Nothing matches") && !secret.contains("hidden/secret"), "{secret}");
    page(&hub, "/?page=abc").await.expect_status(400, "a malformed page number");

    // The same page for the owner through the registry token she would use is not a
    // login: pages are anonymous until the UI has sessions.
    let token = hub.token(&olga, &[repo_scope("hidden/secret", "pull")]).await.expect("token");
    let reply = hub.send(hub.client.get(hub.url("/")).bearer_auth(token)).await;
    assert!(!reply.text().contains("hidden/secret"));
}

/// The names of the cards on a page, in order.
fn card_names(html: &str) -> Vec<String> {
    html.split("<h2><a href=\"/r/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn explore_filters_by_keyword_and_sorts_without_leaking_private_repositories() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    let readme = |keywords: &str| format!("---\nkeywords: [{keywords}]\n---\n# App");
    hub.push_with_readme(&olga, "acme/gamma", "v1", &readme("web-server, proxy")).await;
    hub.push_with_readme(&olga, "acme/alpha", "v1", &readme("database")).await;
    hub.push_with_readme(&olga, "acme/beta", "v1", &readme("web-server")).await;
    hub.push_with_readme(&olga, "olga/secret", "v1", &readme("web-server")).await;
    let token = hub.token(&olga, &[repo_scope("acme/alpha", "pull")]).await.expect("token");
    for _ in 0..2 {
        hub.send(
            hub.v2(Method::GET, "/v2/acme/alpha/manifests/v1", Some(&token))
                .header("accept", "application/vnd.oci.image.manifest.v1+json"),
        )
        .await
        .expect_status(200, "pull");
    }
    // Pull counts reach the database in batches; a restart writes what is pending.
    let hub = hub.restart();

    let recent = page(&hub, "/").await.expect_status(200, "explore").text();
    assert_eq!(card_names(&recent), ["acme/beta", "acme/alpha", "acme/gamma"], "newest first");
    let by_name = page(&hub, "/?sort=name").await.expect_status(200, "by name").text();
    assert_eq!(card_names(&by_name), ["acme/alpha", "acme/beta", "acme/gamma"]);
    assert!(by_name.contains("<option value=\"name\" selected>"), "the choice is kept");
    let by_pulls = page(&hub, "/?sort=pulls").await.expect_status(200, "by pulls").text();
    assert_eq!(card_names(&by_pulls)[0], "acme/alpha", "the most pulled first");

    let web = page(&hub, "/?keyword=web-server&sort=name").await.expect_status(200, "web").text();
    assert_eq!(card_names(&web), ["acme/beta", "acme/gamma"], "a private one is never listed");
    assert!(web.contains("2 repositories") && web.contains("Keyword “web-server”"), "{web}");
    assert!(
        recent.contains("href=\"/?keyword=web-server\""),
        "a keyword chip narrows the listing: {recent}"
    );
    let none = page(&hub, "/?keyword=%22%3Cb%3E").await.expect_status(200, "odd keyword").text();
    assert!(none.contains("No repository you can see has the keyword") && !none.contains("<b>"));
    let punctuation = page(&hub, "/?keyword=%22%22").await.expect_status(200, "quotes").text();
    assert!(card_names(&punctuation).is_empty());
    page(&hub, "/?sort=random").await.expect_status(400, "an unknown order");
}

#[tokio::test]
async fn a_repository_page_renders_its_readme_safely_and_hides_private_ones() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    let readme = "---\ndescription: The app\n---\n# App\n\n## Getting started\n\n```sh\nrun it\n```\n\n<script>alert('readme')</script>\n\n<img src=x onerror=alert(1)>\n\n<a href=\"javascript:alert(2)\">bad</a>\n";
    hub.push_with_readme(&olga, "acme/app", "v1", readme).await;
    hub.push_with_readme(&olga, "acme/app", "v2", readme).await;
    hub.push_with_readme(&olga, "olga/private", "v1", "# Mine").await;

    let html = page(&hub, "/r/acme/app").await.expect_status(200, "the repository page").text();
    assert!(
        html.contains("<h1 id=\"user-content-app\">App</h1>"),
        "the README is rendered: {html}"
    );
    assert!(html.contains("<pre><code>run it"), "code blocks are kept: {html}");
    let lower = html.to_lowercase();
    assert_eq!(lower.matches("<script").count(), 1, "only the hub's own script: {html}");
    for bad in ["onerror", "javascript:"] {
        assert!(!lower.contains(bad), "{bad} reached the page: {html}");
    }
    let host = hub.server().host();
    assert!(
        html.contains(&format!("docker pull {host}/acme/app:v2")),
        "the pull command names this server: {html}"
    );

    let tags = page(&hub, "/r/acme/app?tab=tags").await.expect_status(200, "the tags tab").text();
    assert!(tags.contains("<code>v1</code>") && tags.contains("<code>v2</code>"), "{tags}");
    assert!(tags.contains(&format!("podman pull --tls-verify=false {host}/acme/app:v1")), "{tags}");

    // A private repository and a missing one answer the same page, status and all.
    let private = page(&hub, "/r/olga/private").await;
    let missing = page(&hub, "/r/olga/nothing").await;
    private.expect_status(404, "a private repository for a visitor");
    assert_eq!(
        private.text().replace("olga/private", "NAME"),
        missing.text().replace("olga/nothing", "NAME")
    );
    page(&hub, "/r/Not..A/Name").await.expect_status(404, "an invalid name");
}

/// A client that shows redirects instead of following them.
pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Logs in through the form; returns the session cookie (`name=value`).
pub(crate) async fn log_in(hub: &Hub, user: &str, password: &str) -> Reply {
    let form = [("username", user), ("password", password), ("next", "/r/olga/private")];
    let client = no_redirects();
    hub.send(client.post(hub.url("/login")).form(&form)).await
}

pub(crate) fn session_cookie(reply: &Reply) -> String {
    let set = reply.header("set-cookie").expect("a session cookie");
    set.split(';').next().expect("name=value").to_string()
}

/// The CSRF token in a page's logout form.
pub(crate) fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..].split('"').next().expect("a closing quote").to_string()
}

/// `path` as the session of `cookie` sees it; every answer carries the security headers.
pub(crate) async fn page_as(hub: &Hub, cookie: &str, path: &str) -> Reply {
    let reply = hub.send(hub.client.get(hub.url(path)).header("cookie", cookie)).await;
    expect_security_headers(&reply, path);
    reply
}

#[tokio::test]
async fn sessions_log_in_show_private_pages_and_end_on_the_server() {
    let hub = Hub::start();
    hub.create_user("olga", "olga-password-1").await;
    let olga = Cred::basic("olga", "olga-password-1");
    hub.push_with_readme(&olga, "olga/private", "v1", "# Mine").await;

    let wrong = log_in(&hub, "olga", "not-her-password").await;
    wrong.expect_status(401, "a wrong password");
    assert!(
        wrong.header("set-cookie").is_none() && wrong.text().contains("wrong"),
        "{}",
        wrong.text()
    );
    let (_, token) = hub.create_token(&olga, "ci", &["pull"], None).await;
    log_in(&hub, "olga", &token).await.expect_status(401, "an access token opens no session");

    let ok = log_in(&hub, "olga", "olga-password-1").await;
    ok.expect_status(303, "the right password");
    assert_eq!(
        ok.header("location").as_deref(),
        Some("/r/olga/private"),
        "back where the visitor was going"
    );
    let set = ok.header("set-cookie").unwrap_or_default();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(flag), "{set:?} lacks {flag}");
    }
    assert!(!set.contains("Secure"), "no Secure flag over plain HTTP: {set:?}");
    let cookie = session_cookie(&ok);

    let mine = page_as(&hub, &cookie, "/r/olga/private").await;
    mine.expect_status(200, "her private repository, with her session");
    let explore = page_as(&hub, &cookie, "/").await.text();
    assert!(explore.contains("olga/private") && explore.contains("Log out"), "{explore}");
    let csrf = csrf_of(&explore);

    // Logging out needs the session's CSRF token; without it nothing changes.
    for bad in ["", "forged"] {
        let reply = hub
            .send(
                hub.client
                    .post(hub.url("/logout"))
                    .header("cookie", &cookie)
                    .form(&[("csrf", bad)]),
            )
            .await;
        reply.expect_status(403, "logout without the CSRF token");
        page_as(&hub, &cookie, "/r/olga/private")
            .await
            .expect_status(200, "the session still works");
    }
    let client = no_redirects();
    let out = hub
        .send(
            client
                .post(hub.url("/logout"))
                .header("cookie", &cookie)
                .form(&[("csrf", csrf.as_str())]),
        )
        .await;
    out.expect_status(303, "logout");
    assert!(out.header("set-cookie").is_some_and(|c| c.contains("Max-Age=0")));
    page_as(&hub, &cookie, "/r/olga/private")
        .await
        .expect_status(404, "the ended session is anonymous again");

    // A password change ends every session of the user.
    let cookie = session_cookie(&log_in(&hub, "olga", "olga-password-1").await);
    page_as(&hub, &cookie, "/r/olga/private").await.expect_status(200, "a new session");
    hub.api(&olga, Method::PATCH, "/api/v1/user", Some(json!({"password": "olga-password-2"})))
        .await
        .expect_status(200, "change the password");
    page_as(&hub, &cookie, "/r/olga/private")
        .await
        .expect_status(404, "sessions end with a password change");
    log_in(&hub, "olga", "http://evil").await.expect_status(401, "a stranger's guess");
}

#[tokio::test]
async fn a_login_never_redirects_off_the_hub() {
    let hub = Hub::start();
    hub.create_user("olga", "olga-password-1").await;
    let client = no_redirects();
    for next in ["https://evil.example/", "//evil.example/", "/\\evil.example"] {
        let form = [("username", "olga"), ("password", "olga-password-1"), ("next", next)];
        let reply = hub.send(client.post(hub.url("/login")).form(&form)).await;
        reply.expect_status(303, next);
        assert_eq!(reply.header("location").as_deref(), Some("/"), "{next}");
    }
    let form =
        page(&hub, "/login?next=//evil.example").await.expect_status(200, "the login form").text();
    assert!(form.contains("name=\"next\" value=\"/\""), "{form}");
}

#[tokio::test]
async fn an_image_page_shows_platforms_layers_config_referrers_and_the_manifest() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    let token = hub.token(&olga, &[repo_scope("acme/app", "pull,push")]).await.expect("token");
    let amd64 = hub.push_platform_image(&token, "acme/app", "amd64").await;
    let arm64 = hub.push_platform_image(&token, "acme/app", "arm64").await;
    let index = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [amd64, arm64],
    });
    let index_size = index.to_string().len();
    let index_digest = hub.put_manifest(&token, "acme/app", "v1", &index).await;
    let empty = hub.push_blob(Some(&token), "acme/app", b"{}").await.expect("empty config");
    let signature = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        "subject": {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index_size},
    });
    let signature_digest = hub
        .put_manifest(&token, "acme/app", &sha256(signature.to_string().as_bytes()), &signature)
        .await;

    let html = page(&hub, "/r/acme/app/-/v1").await.expect_status(200, "the image page").text();
    assert!(html.contains("linux/amd64") && html.contains("linux/arm64"), "both platforms: {html}");
    assert!(html.contains(&index_digest), "the index digest: {html}");
    assert!(
        html.contains("<code class=\"step\">RUN make install</code>"),
        "a layer with the step that made it: {html}"
    );
    assert!(!html.contains("class=\"step\">ENV"), "a step without a layer is not a layer");
    assert!(html.contains("<code>/app --serve</code>") && html.contains("8080/tcp"), "{html}");
    let env_start = html.find("<details class=\"env\">").expect("the environment is folded");
    let secret = html.find("hunter2-secret").expect("the value is there, behind the click");
    assert!(secret > env_start, "environment values only inside the folded section");
    assert!(
        !html.contains("<script>alert('label')") && html.contains("&#60;script&#62;"),
        "labels are escaped: {html}"
    );
    assert!(html.contains("Signatures <span class=\"muted\">(1)</span>"), "{html}");
    assert!(html.contains(&format!("/r/acme/app/-/{signature_digest}")), "{html}");
    assert!(html.contains("&#34;schemaVersion&#34;: 2"), "the manifest, pretty: {html}");
    let host = hub.server().host();
    assert!(html.contains(&format!("docker pull {host}/acme/app:v1")), "{html}");

    let by_digest = page(&hub, &format!("/r/acme/app/-/{}", amd64["digest"].as_str().unwrap()))
        .await
        .expect_status(200, "one platform by digest")
        .text();
    assert!(by_digest.contains("linux/amd64") && !by_digest.contains("linux/arm64"));
    let tags = page(&hub, "/r/acme/app?tab=tags").await.expect_status(200, "tags").text();
    assert!(tags.contains("href=\"/r/acme/app/-/v1\""), "tags link to their image: {tags}");
    assert!(tags.contains("platform tag of <code>v1</code>"), "v1-amd64 is v1's: {tags}");
    assert!(tags.contains("hide 2 per-platform tags"), "{tags}");
    let hidden = page(&hub, "/r/acme/app?tab=tags&platform_tags=hide").await.text();
    assert!(hidden.contains("/r/acme/app/-/v1\"") && !hidden.contains("/-/v1-amd64\""), "{hidden}");
    assert!(hidden.contains("show 2 per-platform tags"), "{hidden}");

    // Missing, malformed and private images all answer the same 404.
    page(&hub, "/r/acme/app/-/v9").await.expect_status(404, "an unknown tag");
    page(&hub, "/r/acme/app/-/sha256:zz").await.expect_status(404, "a malformed digest");
    page(&hub, "/r/acme/none/-/v1").await.expect_status(404, "an unknown repository");
    hub.push_with_readme(&olga, "olga/private", "v1", "# Mine").await;
    page(&hub, "/r/olga/private/-/v1").await.expect_status(404, "a private image");
}

#[tokio::test]
async fn the_tags_tab_sorts_by_name_and_pages() {
    let hub = Hub::start();
    let olga = hub.olga_with_public_acme().await;
    hub.push_with_readme(&olga, "acme/app", "v1", "# App").await;
    let token = hub.token(&olga, &[repo_scope("acme/app", "pull,push")]).await.expect("token");
    let manifest = hub
        .send(
            hub.v2(Method::GET, "/v2/acme/app/manifests/v1", Some(&token))
                .header("accept", OCI_MANIFEST),
        )
        .await
        .expect_status(200, "the manifest")
        .json();
    // 54 tags of one image (so one push time): v1 and t00 … t52.
    for i in 0..53 {
        hub.put_manifest(&token, "acme/app", &format!("t{i:02}"), &manifest).await;
    }
    let tags_of = |html: &str| -> Vec<String> {
        html.split("<th scope=\"row\"><a href=\"/r/acme/app/-/")
            .skip(1)
            .filter_map(|rest| rest.split('"').next().map(str::to_string))
            .collect()
    };
    let first = page(&hub, "/r/acme/app?tab=tags").await.expect_status(200, "tags").text();
    let mut listed = tags_of(&first);
    assert_eq!(listed.len(), 50, "a page of 50: {listed:?}");
    assert!(first.contains("Page 1 of 2") && first.contains("page=2"), "{first}");
    let second = page(&hub, "/r/acme/app?tab=tags&page=2").await.text();
    listed.extend(tags_of(&second));
    listed.sort();
    listed.dedup();
    assert_eq!(listed.len(), 54, "the two pages hold every tag once");
    let by_name = page(&hub, "/r/acme/app?tab=tags&sort=name").await.text();
    assert_eq!(tags_of(&by_name)[..3], ["t00", "t01", "t02"]);
    let last = page(&hub, "/r/acme/app?tab=tags&sort=name&page=99").await.text();
    assert_eq!(tags_of(&last).last().map(String::as_str), Some("v1"), "past the end: the last");
    page(&hub, "/r/acme/app?tab=tags&sort=size").await.expect_status(400, "an unknown order");
}
