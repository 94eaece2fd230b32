//! Looking around a hub: `imagehub search`, `imagehub inspect`, `imagehub rm`.

use imagehub_client::RemoteReference;
use reqwest::Method;
use serde_json::Value;

use super::api::{Hub, encode};
use super::login::registry_or_default;
use super::{ClientArgs, Failure, block_on, print_table};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  imagehub search database\n  imagehub search redis --registry hub.example.com --json"
)]
pub struct SearchArgs {
    /// Words to look for in names, keywords and descriptions.
    query: String,
    /// The hub; $IMAGEHUB_REGISTRY or 127.0.0.1:5000 by default.
    #[arg(long)]
    registry: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  imagehub inspect 127.0.0.1:5000/team/app:v1\n  imagehub inspect 127.0.0.1:5000/team/app:v1 --json"
)]
pub struct ImageArgs {
    /// The image: `HOST/org/repo:tag` or `…@sha256:…`.
    image: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn search(args: SearchArgs) -> Result<(), Failure> {
    let registry = registry_or_default(args.registry);
    let hub = Hub::new(&registry, &args.client)?;
    let path = format!("/api/v1/search?q={}&per_page=50", encode(&args.query));
    let found = block_on_value(hub.call(Method::GET, &path))?;
    if args.client.json {
        println!("{found}");
        return Ok(());
    }
    let results = found["results"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r["name"].as_str().unwrap_or("").into(),
                r["latest_tag"].as_str().unwrap_or("-").into(),
                r["pull_count"].as_u64().unwrap_or(0).to_string(),
                r["description"].as_str().unwrap_or("").into(),
            ]
        })
        .collect();
    let empty = format!("Nothing matches {:?}.", args.query);
    print_table(&["NAME", "LATEST", "PULLS", "DESCRIPTION"], &rows, &empty);
    if let Some(total) = found["total"].as_u64().filter(|&t| t as usize > results.len()) {
        println!("({} of {total}; refine the query)", results.len());
    }
    Ok(())
}

/// The API path of an image, and the hub it is on.
fn image_path(image: &str) -> Result<(String, String), Failure> {
    let reference: RemoteReference =
        image.parse().map_err(|e| Failure { code: 2, ..Failure::new(format!("{e}")) })?;
    let (org, repo) = reference.repository.as_str().split_once('/').ok_or_else(|| Failure {
        code: 2,
        ..Failure::new(format!("{image}: name the image as HOST/org/repo:tag"))
    })?;
    let path = format!("/api/v1/orgs/{org}/repos/{repo}/images/{}", reference.reference());
    Ok((reference.registry, path))
}

pub fn inspect(args: ImageArgs) -> Result<(), Failure> {
    let (registry, path) = image_path(&args.image)?;
    let hub = Hub::new(&registry, &args.client)?;
    let image = block_on_value(hub.call(Method::GET, &path))?;
    if args.client.json {
        println!("{image}");
        return Ok(());
    }
    let field = |label: &str, value: &str| println!("{:<14}{value}", format!("{label}:"));
    field("Name", text(&image["name"]));
    field("Digest", text(&image["digest"]));
    field("Media type", text(&image["media_type"]));
    field("Size", &size(&image["size"]));
    if let Some(created) = image["created"].as_str() {
        field("Created", created);
    }
    field("Pushed", &format!("{} by {}", text(&image["pushed_at"]), text(&image["pushed_by"])));
    field("Pulls", &image["pull_count"].as_u64().unwrap_or(0).to_string());
    let details = &image["details"];
    let from = |name: &str| match image["detail_origins"][name].as_str() {
        Some(source) => format!("  (from {})", source_words(source)),
        None => String::new(),
    };
    for name in ["description", "url", "icon"] {
        if let Some(value) = details[name].as_str() {
            field(&capitalise(name), &format!("{value}{}", from(name)));
        }
    }
    if let Some(keywords) = details["keywords"].as_array().filter(|k| !k.is_empty()) {
        let words: Vec<&str> = keywords.iter().filter_map(Value::as_str).collect();
        field("Keywords", &format!("{}{}", words.join(", "), from("keywords")));
    }
    if let Some(docs) = details["docs"].as_str() {
        let lines = match docs.lines().count() {
            1 => "1 line".to_string(),
            n => format!("{n} lines"),
        };
        field("README", &format!("{lines} of markdown{}", from("docs")));
    }
    if let Some(problem) = image["index_error"].as_str() {
        field("Indexing", problem);
    }
    let platforms: Vec<Vec<String>> = image["platforms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let name = match p["variant"].as_str() {
                Some(v) => format!("{}/{}/{v}", text(&p["os"]), text(&p["architecture"])),
                None => format!("{}/{}", text(&p["os"]), text(&p["architecture"])),
            };
            vec![name, p["digest"].as_str().unwrap_or("(this manifest)").into(), size(&p["size"])]
        })
        .collect();
    println!();
    print_table(&["PLATFORM", "DIGEST", "SIZE"], &platforms, "No platform: an artifact.");
    Ok(())
}

pub fn rm(args: ImageArgs) -> Result<(), Failure> {
    let (registry, path) = image_path(&args.image)?;
    let hub = Hub::new(&registry, &args.client)?;
    block_on_value(hub.call(Method::DELETE, &path))?;
    println!("Deleted {}", args.image);
    Ok(())
}

/// A detail source as the API names it, in words.
fn source_words(source: &str) -> &str {
    match source {
        "edit" => "an edit on the hub",
        "push_readme" => "the README given at push",
        "image_readme" => "the README in the image",
        "labels" => "the image's labels",
        other => other,
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

/// A size in bytes as people read it: `305.0 MiB`.
fn size(bytes: &Value) -> String {
    bytes.as_u64().map_or("-".into(), |b| indicatif::HumanBytes(b).to_string())
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn block_on_value(
    call: impl std::future::Future<Output = Result<Value, Failure>>,
) -> Result<Value, Failure> {
    let mut out = Value::Null;
    block_on(async {
        out = call.await?;
        Ok(())
    })?;
    Ok(out)
}
