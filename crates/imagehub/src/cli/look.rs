//! Looking around a hub: `imagehub search`, `imagehub inspect`, `imagehub rm`.

use imagehub_client::RemoteReference;
use reqwest::Method;
use serde_json::Value;

use super::api::{Hub, encode};
use super::login::registry_or_default;
use super::{ClientArgs, Failure, block_on};

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
    if results.is_empty() {
        println!("Nothing matches {:?}.", args.query);
        return Ok(());
    }
    let width =
        results.iter().filter_map(|r| r["name"].as_str()).map(str::len).max().unwrap_or(4).max(4);
    println!("{:<width$}  {:<12}  {:>7}  DESCRIPTION", "NAME", "LATEST", "PULLS");
    for r in &results {
        println!(
            "{:<width$}  {:<12}  {:>7}  {}",
            r["name"].as_str().unwrap_or(""),
            r["latest_tag"].as_str().unwrap_or("-"),
            r["pull_count"].as_u64().unwrap_or(0),
            r["description"].as_str().unwrap_or("")
        );
    }
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
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    println!("Name:       {}", text(&image["name"]));
    println!("Digest:     {}", text(&image["digest"]));
    println!("Media type: {}", text(&image["media_type"]));
    let platforms: Vec<String> = image["platforms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| match p["variant"].as_str() {
            Some(v) => format!("{}/{}/{v}", text(&p["os"]), text(&p["architecture"])),
            None => format!("{}/{}", text(&p["os"]), text(&p["architecture"])),
        })
        .collect();
    println!(
        "Platforms:  {}",
        if platforms.is_empty() { "-".into() } else { platforms.join(", ") }
    );
    println!("Size:       {}", image["size"].as_u64().map_or("-".into(), |s| format!("{s} bytes")));
    println!("Pushed:     {} by {}", text(&image["pushed_at"]), text(&image["pushed_by"]));
    println!("Pulls:      {}", image["pull_count"].as_u64().unwrap_or(0));
    let details = &image["details"];
    for field in ["description", "url", "icon"] {
        if let Some(value) = details[field].as_str() {
            println!("{:<11} {value}", format!("{}:", capitalise(field)));
        }
    }
    if let Some(keywords) = details["keywords"].as_array().filter(|k| !k.is_empty()) {
        let words: Vec<&str> = keywords.iter().filter_map(Value::as_str).collect();
        println!("Keywords:   {}", words.join(", "));
    }
    if let Some(sources) = image["detail_sources"].as_array().filter(|s| !s.is_empty()) {
        let names: Vec<&str> = sources.iter().filter_map(Value::as_str).collect();
        println!("Details from: {} (strongest first)", names.join(", "));
    }
    Ok(())
}

pub fn rm(args: ImageArgs) -> Result<(), Failure> {
    let (registry, path) = image_path(&args.image)?;
    let hub = Hub::new(&registry, &args.client)?;
    block_on_value(hub.call(Method::DELETE, &path))?;
    println!("Deleted {}", args.image);
    Ok(())
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
