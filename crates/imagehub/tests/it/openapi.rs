//! `/api/v1/openapi.json`: the OpenAPI document of the management API is served, names
//! every route the router serves and no other, and describes the JSON the handlers
//! actually answer.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::hub::{Cred, Hub};

/// Every (method, path) the `/api/v1` router serves, copied from `router` in
/// `crates/imagehub-server/src/api/mod.rs`. Keep it in step with that router: a route
/// added there needs its `#[utoipa::path]` (listed in `paths(...)` of `api/openapi.rs`)
/// and its line here.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/orgs/{org}/images/import"),
    ("POST", "/api/v1/projects/{project}/images/import"),
    ("GET", "/api/v1/orgs/{org}/imports"),
    ("GET", "/api/v1/imports"),
    ("GET", "/api/v1/builds"),
    ("POST", "/api/v1/builds"),
    ("POST", "/api/v1/builds/commands"),
    ("GET", "/api/v1/builds/{id}"),
    ("DELETE", "/api/v1/builds/{id}"),
    ("GET", "/api/v1/imports/{id}"),
    ("DELETE", "/api/v1/imports/{id}"),
    ("GET", "/api/v1/imports/{id}/events"),
    ("GET", "/api/v1/import-groups/{id}"),
    ("DELETE", "/api/v1/import-groups/{id}"),
    ("GET", "/api/v1/orgs/{org}/sync-rules"),
    ("POST", "/api/v1/orgs/{org}/sync-rules"),
    ("GET", "/api/v1/sync-rules/{id}"),
    ("PUT", "/api/v1/sync-rules/{id}"),
    ("DELETE", "/api/v1/sync-rules/{id}"),
    ("POST", "/api/v1/sync-rules/{id}/run"),
    ("GET", "/api/v1/sync-rules/{id}/runs"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/user"),
    ("PATCH", "/api/v1/user"),
    ("GET", "/api/v1/user/tokens"),
    ("POST", "/api/v1/user/tokens"),
    ("DELETE", "/api/v1/user/tokens/{id}"),
    ("GET", "/api/v1/orgs"),
    ("POST", "/api/v1/orgs"),
    ("GET", "/api/v1/orgs/{org}"),
    ("PATCH", "/api/v1/orgs/{org}"),
    ("DELETE", "/api/v1/orgs/{org}"),
    ("GET", "/api/v1/orgs/{org}/members"),
    ("PUT", "/api/v1/orgs/{org}/members/{user}"),
    ("DELETE", "/api/v1/orgs/{org}/members/{user}"),
    ("GET", "/api/v1/orgs/{org}/repos"),
    ("GET", "/api/v1/orgs/{org}/repos/{repo}"),
    ("PATCH", "/api/v1/orgs/{org}/repos/{repo}"),
    ("DELETE", "/api/v1/orgs/{org}/repos/{repo}"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/orgs/{org}/repos/{repo}/images"),
    ("GET", "/api/v1/orgs/{org}/repos/{repo}/images/{reference}"),
    ("PATCH", "/api/v1/orgs/{org}/repos/{repo}/images/{reference}"),
    ("DELETE", "/api/v1/orgs/{org}/repos/{repo}/images/{reference}"),
    ("PUT", "/api/v1/orgs/{org}/repos/{repo}/images/{reference}/readme"),
    ("POST", "/api/v1/admin/index"),
    ("GET", "/api/v1/search"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/datapacks"),
    ("GET", "/api/v1/datapacks/{name}"),
    ("POST", "/api/v1/apply"),
    ("GET", "/api/v1/export"),
];

/// Routes whose operations answer no 4xx of their own.
const WITHOUT_ERRORS: &[&str] = &["/api/v1/openapi.json"];

const HTTP_METHODS: [&str; 8] =
    ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

async fn document(hub: &Hub) -> Value {
    let reply = hub.api(&Cred::Anonymous, Method::GET, "/api/v1/openapi.json", None).await;
    reply.expect_status(200, "GET /api/v1/openapi.json anonymously");
    assert!(
        reply.header("content-type").is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        reply.header("content-type")
    );
    reply.json()
}

/// (METHOD, path) of every operation in the document, with the operation.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut found = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("a path item is an object") {
            if HTTP_METHODS.contains(&method.as_str()) {
                found.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    found
}

#[tokio::test]
async fn the_document_names_every_route_and_no_other() {
    let hub = Hub::start();
    let doc = document(&hub).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "openapi: {}",
        doc["openapi"]
    );
    assert!(!doc["info"]["title"].as_str().unwrap_or_default().is_empty());

    let documented: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    let routed: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(routed.len(), ROUTES.len(), "ROUTES has duplicates");
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes the document lacks: {undocumented:?}");
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(unrouted.is_empty(), "documented operations no route serves: {unrouted:?}");

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");

    let error_body = &doc["components"]["schemas"]["ErrorBody"];
    assert!(error_body["properties"]["errors"].is_object(), "ErrorBody: {error_body}");
    assert!(
        error_body["required"].as_array().is_some_and(|r| r.contains(&json!("errors"))),
        "ErrorBody: {error_body}"
    );

    let mut operation_ids = BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let what = format!("{method} {path}");
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{what} has no summary"
        );
        assert!(
            operation_ids.insert(operation["operationId"].to_string()),
            "{what}: operationId {} again",
            operation["operationId"]
        );
        assert!(operation["tags"].as_array().is_some_and(|t| !t.is_empty()), "{what} has no tag");
        for name in path_parameters(&path) {
            let declared = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["in"] == "path" && p["name"] == name);
            assert!(declared, "{what} does not describe its path parameter {name:?}");
        }
        let responses =
            operation["responses"].as_object().unwrap_or_else(|| panic!("{what} has no responses"));
        if WITHOUT_ERRORS.contains(&path.as_str()) {
            continue;
        }
        let client_errors: Vec<&String> =
            responses.keys().filter(|status| status.starts_with('4')).collect();
        assert!(!client_errors.is_empty(), "{what} documents no 4xx response");
        for status in client_errors {
            let schema =
                &response(&doc, &responses[status])["content"]["application/json"]["schema"];
            assert_eq!(
                schema["$ref"], "#/components/schemas/ErrorBody",
                "{what} {status} is not an ErrorBody"
            );
        }
    }
}

/// Every listed route is one the server serves: a request to it (anonymous, with
/// placeholder parameters) is answered by a handler, not by the router's 404 or 405.
#[tokio::test]
async fn every_listed_route_is_served() {
    let hub = Hub::start();
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{org}", "acme")
            .replace("{repo}", "app")
            .replace("{reference}", "v1")
            .replace("{user}", "nobody")
            .replace("{id}", "1")
            .replace("{name}", "dp-0");
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let reply = hub.send(hub.client.request(method.clone(), hub.url(&concrete))).await;
        let what = format!("{method} {concrete}: {} {}", reply.status, reply.text());
        assert_ne!(reply.status.as_u16(), 405, "{what}");
        if reply.status.as_u16() == 404 {
            let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            assert!(body["errors"].is_array(), "the router, not a handler, answered {what}");
        }
    }
}

/// Real answers, checked against the schemas the document gives for them: every field
/// they hold is described, and every required field is there.
#[tokio::test]
async fn answers_match_the_documented_schemas() {
    let hub = Hub::start();
    let doc = document(&hub).await;
    hub.create_user("olga", "olga-Secret-1").await;
    hub.create_user("vic", "vic-Secret-12").await;
    let olga = Cred::basic("olga", "olga-Secret-1");
    let admin = Cred::admin();
    let readme = "---\ndescription: a database\nkeywords: [db, sql]\nicon: https://example.org/i.png\n---\n# App";

    let check = async |cred: &Cred,
                       method: Method,
                       path: &str,
                       template: &str,
                       body: Option<Value>,
                       status: u16| {
        let reply = hub.api(cred, method.clone(), path, body).await;
        reply.expect_status(status, &format!("{method} {path}"));
        let operation = &doc["paths"][template][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{method} {template} is not documented");
        let documented = response(&doc, &operation["responses"][status.to_string()]);
        assert!(documented.is_object(), "{method} {template} does not document {status}");
        let schema = &documented["content"]["application/json"]["schema"];
        let value = reply.json();
        if let Err(problem) = conforms(&doc, schema, &value, "$") {
            panic!(
                "{method} {path} ({status}) answered JSON its schema does not describe: {problem}\n{value:#}"
            );
        }
        value
    };

    check(
        &olga,
        Method::POST,
        "/api/v1/orgs",
        "/api/v1/orgs",
        Some(json!({"name": "acme", "description": "Acme"})),
        201,
    )
    .await;
    check(
        &olga,
        Method::PUT,
        "/api/v1/orgs/acme/members/vic",
        "/api/v1/orgs/{org}/members/{user}",
        Some(json!({"role": "viewer"})),
        200,
    )
    .await;
    hub.push_with_readme(&olga, "acme/app", "v1", readme).await;
    hub.push_with_readme(&olga, "acme/bare", "v1", "").await;

    check(&olga, Method::GET, "/api/v1/user", "/api/v1/user", None, 200).await;
    check(
        &olga,
        Method::PATCH,
        "/api/v1/user",
        "/api/v1/user",
        Some(json!({"email": "olga@example.org"})),
        200,
    )
    .await;
    let token = check(
        &olga,
        Method::POST,
        "/api/v1/user/tokens",
        "/api/v1/user/tokens",
        Some(json!({"name": "ci", "scopes": ["pull", "push"], "namespaces": ["acme"], "expires_at": 4_000_000_000_i64})),
        201,
    )
    .await;
    check(&olga, Method::GET, "/api/v1/user/tokens", "/api/v1/user/tokens", None, 200).await;
    check(&olga, Method::GET, "/api/v1/orgs", "/api/v1/orgs", None, 200).await;
    check(&admin, Method::GET, "/api/v1/orgs", "/api/v1/orgs", None, 200).await;
    check(&olga, Method::GET, "/api/v1/orgs/acme", "/api/v1/orgs/{org}", None, 200).await;
    check(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/acme",
        "/api/v1/orgs/{org}",
        Some(json!({"default_visibility": "public"})),
        200,
    )
    .await;
    check(&olga, Method::GET, "/api/v1/orgs/acme/members", "/api/v1/orgs/{org}/members", None, 200)
        .await;
    check(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/app",
        "/api/v1/orgs/{org}/repos/{repo}",
        Some(json!({"visibility": "public"})),
        200,
    )
    .await;
    check(&olga, Method::GET, "/api/v1/orgs/acme/repos", "/api/v1/orgs/{org}/repos", None, 200)
        .await;
    check(
        &olga,
        Method::GET,
        "/api/v1/orgs/acme/repos/app",
        "/api/v1/orgs/{org}/repos/{repo}",
        None,
        200,
    )
    .await;
    check(
        &olga,
        Method::GET,
        "/api/v1/orgs/acme/repos/app/images",
        "/api/v1/orgs/{org}/repos/{repo}/images",
        None,
        200,
    )
    .await;
    let image = "/api/v1/orgs/{org}/repos/{repo}/images/{reference}";
    let app =
        check(&olga, Method::GET, "/api/v1/orgs/acme/repos/app/images/v1", image, None, 200).await;
    assert!(
        app["details"]["docs"].is_string() && app["detail_sources"].is_array(),
        "a single image has docs and sources: {app}"
    );
    let digest = app["digest"].as_str().expect("digest");
    check(
        &olga,
        Method::GET,
        &format!("/api/v1/orgs/acme/repos/bare/images/{digest}"),
        image,
        None,
        404,
    )
    .await;
    check(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/app/images/v1",
        image,
        Some(json!({"title": "App", "description": null})),
        200,
    )
    .await;
    check(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/app/images/v1",
        image,
        Some(json!({"colour": "red"})),
        400,
    )
    .await;
    check(&Cred::Anonymous, Method::GET, "/api/v1/search?q=app", "/api/v1/search", None, 200).await;
    check(&Cred::Anonymous, Method::GET, "/api/v1/search", "/api/v1/search", None, 400).await;
    let names =
        json!(["acme/app:v1", format!("acme/app@{digest}"), "acme/bare", "acme/missing:v1"]);
    for kind in ["base", "detail"] {
        let pack = check(
            &olga,
            Method::POST,
            "/api/v1/datapacks",
            "/api/v1/datapacks",
            Some(json!({"type": kind, "names": names})),
            201,
        )
        .await;
        let name = pack["name"].as_str().expect("DataPack name");
        check(
            &olga,
            Method::GET,
            &format!("/api/v1/datapacks/{name}"),
            "/api/v1/datapacks/{name}",
            None,
            200,
        )
        .await;
    }
    check(&admin, Method::POST, "/api/v1/admin/index", "/api/v1/admin/index", None, 200).await;
    check(&admin, Method::GET, "/api/v1/audit?limit=50", "/api/v1/audit", None, 200).await;
    check(&olga, Method::GET, "/api/v1/orgs/nowhere", "/api/v1/orgs/{org}", None, 404).await;
    check(&Cred::basic("olga", "wrong"), Method::GET, "/api/v1/user", "/api/v1/user", None, 401)
        .await;
    check(&Cred::Anonymous, Method::GET, "/api/v1/user", "/api/v1/user", None, 401).await;
    check(&olga, Method::DELETE, "/api/v1/orgs/acme", "/api/v1/orgs/{org}", None, 409).await;
    check(&olga, Method::POST, "/api/v1/orgs", "/api/v1/orgs", Some(json!({"name": "acme"})), 409)
        .await;
    let id = token["id"].as_i64().expect("token id");
    hub.api(&olga, Method::DELETE, &format!("/api/v1/user/tokens/{id}"), None)
        .await
        .expect_status(204, "revoke");
}

/// `{name}`s of a path template.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name)).collect()
}

/// A response object, following a `$ref` to `components/responses`.
fn response<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/responses/")) {
        Some(name) => &doc["components"]["responses"][name],
        None => response,
    }
}

/// A schema, following a `$ref` to `components/schemas`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
            let resolved = &doc["components"]["schemas"][name];
            assert!(resolved.is_object(), "$ref to a missing schema {reference}");
            resolved
        }
        None => schema,
    }
}

/// Whether `value` fits `schema`, as far as the document's schemas go: types, enums,
/// required properties, no undescribed properties, array items.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(variants) = schema["oneOf"].as_array() {
        return match variants.iter().any(|variant| conforms(doc, variant, value, at).is_ok()) {
            true => Ok(()),
            false => Err(format!("{at}: {value} fits none of {}", schema["oneOf"])),
        };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let fits = |t: &str| types.is_empty() || types.contains(&t);
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {}", schema["enum"]));
    }
    match value {
        Value::Null if !fits("null") => {
            Err(format!("{at}: null, but the schema's type is {}", schema["type"]))
        }
        Value::Bool(_) if !fits("boolean") => {
            Err(format!("{at}: a boolean, but the schema's type is {}", schema["type"]))
        }
        Value::Number(n) if !(fits("number") || (n.is_i64() || n.is_u64()) && fits("integer")) => {
            Err(format!("{at}: {n}, but the schema's type is {}", schema["type"]))
        }
        Value::String(_) if !fits("string") => {
            Err(format!("{at}: a string, but the schema's type is {}", schema["type"]))
        }
        Value::Array(items) => {
            if !fits("array") {
                return Err(format!("{at}: an array, but the schema's type is {}", schema["type"]));
            }
            for (i, item) in items.iter().enumerate() {
                if let Some(item_schema) = schema.get("items") {
                    conforms(doc, item_schema, item, &format!("{at}[{i}]"))?;
                }
            }
            Ok(())
        }
        Value::Object(fields) => {
            if !fits("object") {
                return Err(format!(
                    "{at}: an object, but the schema's type is {}",
                    schema["type"]
                ));
            }
            let Some(properties) = schema["properties"].as_object() else { return Ok(()) };
            for required in
                schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str)
            {
                if !fields.contains_key(required) {
                    return Err(format!("{at}: the required {required:?} is missing"));
                }
            }
            for (key, field) in fields {
                let Some(property) = properties.get(key) else {
                    return Err(format!("{at}: {key:?} is not in the schema"));
                };
                conforms(doc, property, field, &format!("{at}.{key}"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
