//! `imagehub import SOURCE --to ORG[/REPO[:TAG]]`: asks a hub to import an image (seed
//! 004) and follows the job: a progress bar with bytes/s and ETA on a terminal, a line
//! per change of state otherwise, nothing but the outcome with `--quiet`; `--detach`
//! prints the job and returns.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use super::api::Hub;
use super::login::registry_or_default;
use super::{ClientArgs, Failure, block_on};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  imagehub import nginx:1.27 --to acme\n  \
                        imagehub import ghcr.io/owner/app:v1 --to acme/app:stable --platform linux/amd64\n  \
                        imagehub import quay.io/prometheus/prometheus --to acme --detach")]
pub struct ImportArgs {
    /// What to import, as `docker pull` takes it.
    source: String,
    /// Where: `ORG`, `ORG/REPO` or `ORG/REPO:TAG` (the source's name and tag by default).
    #[arg(long)]
    to: String,
    /// Only these platforms of a multi-platform image (repeatable): `linux/amd64`.
    #[arg(long = "platform")]
    platforms: Vec<String>,
    /// Print the job and return without waiting.
    #[arg(long)]
    detach: bool,
    /// Print only the outcome.
    #[arg(long, short)]
    quiet: bool,
    /// The hub; $IMAGEHUB_REGISTRY or 127.0.0.1:5000 by default.
    #[arg(long)]
    registry: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn import(args: ImportArgs) -> Result<(), Failure> {
    let registry = registry_or_default(args.registry.clone());
    let hub = Hub::new(&registry, &args.client)?;
    let (org, rest) =
        args.to.split_once('/').map_or((args.to.as_str(), None), |(o, r)| (o, Some(r)));
    let (image, tag) = match rest {
        Some(rest) => match rest.rsplit_once(':') {
            Some((image, tag)) => (Some(image), Some(tag)),
            None => (Some(rest), None),
        },
        None => (None, None),
    };
    let mut body = json!({"source_url": args.source});
    if let Some(image) = image {
        body["target_image"] = json!(image);
    }
    if let Some(tag) = tag {
        body["target_tag"] = json!(tag);
    }
    if !args.platforms.is_empty() {
        body["platforms"] = json!(args.platforms);
    }
    block_on(async {
        let job = hub
            .send(Method::POST, &format!("/api/v1/orgs/{org}/images/import"), Some(body))
            .await?;
        if args.detach {
            match args.client.json {
                true => println!("{job}"),
                false => {
                    println!("Import {} queued: {}", job["id"], job["url"].as_str().unwrap_or(""))
                }
            }
            return Ok(());
        }
        let job = follow(&hub, job, &args).await?;
        finish(&job, &args)
    })
}

/// Waits for the job's end, showing its progress; the job as it ended.
async fn follow(hub: &Hub, mut job: Value, args: &ImportArgs) -> Result<Value, Failure> {
    let url = job["url"].as_str().unwrap_or_default().to_string();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let bytes_style = ProgressStyle::with_template(
        "{msg:28!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    // Until the job knows its size, a spinner: a bar of 0 of 0 bytes would say nothing.
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let fancy = !args.quiet && !bar.is_hidden();
    if args.quiet || !fancy {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let mut last_state = String::new();
    loop {
        let state = job["state"].as_str().unwrap_or("").to_string();
        if let Some(total) = job["progress"]["bytes_total"].as_u64().filter(|&t| t > 0) {
            if bar.length().is_none() {
                bar.set_style(bytes_style.clone());
                bar.set_length(total);
                bar.reset_eta();
            }
            bar.set_position(job["progress"]["bytes_done"].as_u64().unwrap_or(0));
        }
        bar.set_message(format!("{} {}", job["target"].as_str().unwrap_or(""), state));
        if state != last_state && !fancy && !args.quiet {
            let reason = job["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default();
            eprintln!("{}: {state}{reason}", job["target"].as_str().unwrap_or(""));
        }
        last_state = state.clone();
        if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
            bar.finish_and_clear();
            return Ok(job);
        }
        // On a terminal, look often to move the bar; otherwise wait for the end.
        match fancy {
            true => {
                tokio::time::sleep(Duration::from_millis(250)).await;
                job = hub.send(Method::GET, &url, None).await?;
            }
            false => job = hub.send(Method::GET, &format!("{url}?wait=30"), None).await?,
        }
    }
}

fn finish(job: &Value, args: &ImportArgs) -> Result<(), Failure> {
    if args.client.json {
        println!("{job}");
    }
    match job["state"].as_str() {
        Some("succeeded") => {
            if !args.client.json {
                let unchanged = job["progress"]["unchanged"] == true;
                println!(
                    "Imported {} as {} ({}){}",
                    job["source"].as_str().unwrap_or(""),
                    job["target"].as_str().unwrap_or(""),
                    job["digest"].as_str().unwrap_or(""),
                    if unchanged { ", unchanged: nothing pulled" } else { "" }
                );
            }
            Ok(())
        }
        other => Err(Failure::new(format!(
            "the import of {} {}: {}",
            job["source"].as_str().unwrap_or(""),
            other.unwrap_or("ended"),
            job["reason"].as_str().unwrap_or("no reason given")
        ))),
    }
}
