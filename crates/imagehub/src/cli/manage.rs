//! The hub's own objects from the command line: `apply` and `export` (seed 001's
//! `imagehub.sealos.io/v1` manifests), `org`, `token`. Each is one call of `/api/v1`.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use super::api::{Hub, encode};
use super::login::registry_or_default;
use super::{ClientArgs, Failure, block_on, print_table};

/// The hub a command talks to.
#[derive(clap::Args, Debug)]
pub struct HubArgs {
    /// The hub; $IMAGEHUB_REGISTRY or 127.0.0.1:5000 by default.
    #[arg(long, global = true)]
    registry: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

impl HubArgs {
    fn hub(&self) -> Result<Hub, Failure> {
        Hub::new(&registry_or_default(self.registry.clone()), &self.client)
    }
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  imagehub apply -f image.yaml\n  imagehub apply -f manifests/\n  \
                        imagehub export --kind Image --org acme | imagehub apply -f -"
)]
pub struct ApplyArgs {
    /// A YAML or JSON file, a directory of them, or `-` for standard input.
    #[arg(short, long)]
    file: String,
    #[command(flatten)]
    hub: HubArgs,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  imagehub export --kind Image --org acme > images.yaml\n  imagehub export --kind Organization --org acme --registry hub.example.com"
)]
pub struct ExportArgs {
    /// `Image`, `Repository` or `Organization`.
    #[arg(long)]
    kind: String,
    /// The organization (or user namespace).
    #[arg(long)]
    org: String,
    #[command(flatten)]
    hub: HubArgs,
}

pub fn apply(args: ApplyArgs) -> Result<(), Failure> {
    let text = read_manifests(&args.file)?;
    let hub = args.hub.hub()?;
    block_on(async {
        let answer =
            hub.exchange(Method::POST, "/api/v1/apply", Some(("application/yaml", text))).await?;
        let applied: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
        if args.hub.client.json {
            println!("{applied}");
            return Ok(());
        }
        for document in applied["applied"].as_array().into_iter().flatten() {
            println!(
                "{} {} {}",
                document["kind"].as_str().unwrap_or(""),
                document["name"].as_str().unwrap_or(""),
                document["result"].as_str().unwrap_or("")
            );
        }
        Ok(())
    })
}

/// The documents of a file, of the YAML and JSON files of a directory (in name order),
/// or of standard input.
fn read_manifests(source: &str) -> Result<String, Failure> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| Failure::new(format!("{}: {e}", path.display())))
    };
    if source == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Failure::new(format!("reading standard input: {e}")))?;
        return Ok(text);
    }
    let path = Path::new(source);
    if !path.is_dir() {
        return read(path);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| Failure::new(format!("{source}: {e}")))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Failure::new(format!("{source} holds no .yaml, .yml or .json file")));
    }
    let mut documents = Vec::new();
    for file in files {
        documents.push(read(&file)?);
    }
    Ok(documents.join("\n---\n"))
}

pub fn export(args: ExportArgs) -> Result<(), Failure> {
    let hub = args.hub.hub()?;
    let path = format!("/api/v1/export?kind={}&org={}", encode(&args.kind), encode(&args.org));
    block_on(async {
        print!("{}", hub.exchange(Method::GET, &path, None).await?);
        Ok(())
    })
}

#[derive(clap::Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an organization (you become its owner).
    Create {
        name: String,
        /// New repositories are public (private by default).
        #[arg(long)]
        public: bool,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List your organizations.
    Ls,
    /// List an organization's members.
    Members { org: String },
    /// Add a member, or change their role (viewer, developer, owner).
    Add {
        org: String,
        user: String,
        #[arg(long, default_value = "developer")]
        role: String,
    },
    /// Remove a member.
    Remove { org: String, user: String },
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  imagehub org create acme --public\n  imagehub org add acme bob --role viewer\n  imagehub org members acme --json"
)]
pub struct OrgArgs {
    #[command(subcommand)]
    command: OrgCommand,
    #[command(flatten)]
    hub: HubArgs,
}

pub fn org(args: OrgArgs) -> Result<(), Failure> {
    let hub = args.hub.hub()?;
    let json = args.hub.client.json;
    block_on(async {
        match args.command {
            OrgCommand::Create { name, public, description } => {
                let visibility = if public { "public" } else { "private" };
                let body = json!({"name": name, "default_visibility": visibility, "description": description});
                let org = hub.send(Method::POST, "/api/v1/orgs", Some(body)).await?;
                show(json, &org, || println!("Created {name}"));
            }
            OrgCommand::Ls => {
                let orgs = hub.call(Method::GET, "/api/v1/orgs").await?;
                show(json, &orgs, || {
                    let rows: Vec<Vec<String>> = orgs["orgs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|org| {
                            let cells = [&org["name"], &org["role"], &org["description"]];
                            cells.into_iter().map(|c| text(c).to_string()).collect()
                        })
                        .collect();
                    let empty = "You are in no organization. Create one: imagehub org create NAME";
                    print_table(&["NAME", "ROLE", "DESCRIPTION"], &rows, empty);
                });
            }
            OrgCommand::Members { org } => {
                let members = hub.call(Method::GET, &format!("/api/v1/orgs/{org}/members")).await?;
                show(json, &members, || {
                    let rows: Vec<Vec<String>> = members["members"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|m| vec![text(&m["user"]).into(), text(&m["role"]).into()])
                        .collect();
                    print_table(&["USER", "ROLE"], &rows, &format!("{org} has no members."));
                });
            }
            OrgCommand::Add { org, user, role } => {
                let path = format!("/api/v1/orgs/{org}/members/{user}");
                let member = hub.send(Method::PUT, &path, Some(json!({"role": role}))).await?;
                show(json, &member, || println!("{user} is {role} of {org}"));
            }
            OrgCommand::Remove { org, user } => {
                hub.call(Method::DELETE, &format!("/api/v1/orgs/{org}/members/{user}")).await?;
                println!("{user} is no longer a member of {org}");
            }
        }
        Ok(())
    })
}

#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an access token; its secret is printed once.
    Create {
        name: String,
        /// What it may do: pull, push, delete (comma-separated).
        #[arg(long, default_value = "pull")]
        scope: String,
        /// Only in these namespaces (repeatable); all yours by default.
        #[arg(long = "namespace")]
        namespaces: Vec<String>,
        /// Stop working after this many days.
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List your access tokens.
    Ls,
    /// Revoke an access token.
    Revoke { id: i64 },
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  imagehub token create ci --scope pull,push --namespace acme\n  imagehub token ls\n  imagehub token revoke 3"
)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
    #[command(flatten)]
    hub: HubArgs,
}

pub fn token(args: TokenArgs) -> Result<(), Failure> {
    let hub = args.hub.hub()?;
    let json = args.hub.client.json;
    block_on(async {
        match args.command {
            TokenCommand::Create { name, scope, namespaces, expires_days } => {
                let scopes: Vec<&str> =
                    scope.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                let mut body = json!({"name": name, "scopes": scopes});
                if !namespaces.is_empty() {
                    body["namespaces"] = json!(namespaces);
                }
                if let Some(days) = expires_days {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    body["expires_at"] = json!(now + u64::from(days) * 86_400);
                }
                let created = hub.send(Method::POST, "/api/v1/user/tokens", Some(body)).await?;
                show(json, &created, || {
                    println!("{}", text(&created["secret"]));
                    eprintln!(
                        "Token {name} created: keep the secret above now, it is not shown again."
                    );
                });
            }
            TokenCommand::Ls => {
                let tokens = hub.call(Method::GET, "/api/v1/user/tokens").await?;
                show(json, &tokens, || {
                    let rows: Vec<Vec<String>> = tokens["tokens"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|token| {
                            let scopes: Vec<&str> = token["scopes"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .collect();
                            vec![
                                token["id"].to_string(),
                                text(&token["name"]).into(),
                                scopes.join(","),
                                text(&token["expires_at"]).into(),
                            ]
                        })
                        .collect();
                    let empty = "No access tokens. Create one: imagehub token create NAME";
                    print_table(&["ID", "NAME", "SCOPES", "EXPIRES"], &rows, empty);
                });
            }
            TokenCommand::Revoke { id } => {
                hub.call(Method::DELETE, &format!("/api/v1/user/tokens/{id}")).await?;
                println!("Revoked token {id}");
            }
        }
        Ok(())
    })
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

/// Prints `value` as JSON for scripts, or runs `human` for people.
fn show(json: bool, value: &Value, human: impl FnOnce()) {
    match json {
        true => println!("{value}"),
        false => human(),
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum SyncCommand {
    /// List an organization's sync rules.
    Ls { org: String },
    /// Create a rule keeping an upstream repository's selected tags copied into ORG.
    Create {
        org: String,
        /// The upstream repository, without a tag: `nginx`, `ghcr.io/owner/repo`.
        upstream: String,
        /// The repository in ORG (the upstream's last path component by default).
        #[arg(long)]
        target: Option<String>,
        /// Only tags matching this regular expression.
        #[arg(long)]
        include: Option<String>,
        /// No tag matching this regular expression.
        #[arg(long)]
        exclude: Option<String>,
        /// Only versions in this range (`>=1.25, <2`).
        #[arg(long)]
        semver: Option<String>,
        /// Only the newest N.
        #[arg(long)]
        newest: Option<u32>,
        /// Run every this many minutes (60 by default).
        #[arg(long, conflicts_with = "cron")]
        every: Option<u64>,
        /// Run on this five-field cron schedule, in UTC.
        #[arg(long)]
        cron: Option<String>,
        /// Pause a run when the upstream's RateLimit-Remaining falls below this.
        #[arg(long)]
        floor: Option<u64>,
    },
    /// Run a rule now and wait for the run's outcome.
    Run { id: i64 },
    /// A rule's last runs, with what each did per tag.
    Runs { id: i64 },
    /// Delete a rule (images it imported stay).
    Rm { id: i64 },
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  imagehub sync create acme nginx --include '^1\\.2[0-9]\\.' --newest 3 --every 360\n  \
                        imagehub sync run 1\n  imagehub sync runs 1 --json"
)]
pub struct SyncArgs {
    #[command(subcommand)]
    command: SyncCommand,
    #[command(flatten)]
    hub: HubArgs,
}

pub fn sync(args: SyncArgs) -> Result<(), Failure> {
    let hub = args.hub.hub()?;
    let json = args.hub.client.json;
    block_on(async {
        match args.command {
            SyncCommand::Ls { org } => {
                let rules =
                    hub.call(Method::GET, &format!("/api/v1/orgs/{org}/sync-rules")).await?;
                show(json, &rules, || {
                    let rows: Vec<Vec<String>> = rules["rules"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|rule| {
                            vec![
                                rule["id"].to_string(),
                                text(&rule["upstream"]).into(),
                                text(&rule["target"]).into(),
                                text(&rule["next_run_at"]).into(),
                            ]
                        })
                        .collect();
                    let empty = format!("{org} has no sync rules.");
                    print_table(&["ID", "UPSTREAM", "TARGET", "NEXT RUN"], &rows, &empty);
                });
            }
            SyncCommand::Create {
                org,
                upstream,
                target,
                include,
                exclude,
                semver,
                newest,
                every,
                cron,
                floor,
            } => {
                let mut body = json!({"upstream": upstream, "target_image": target, "include": include, "exclude": exclude,
                    "semver": semver, "newest": newest, "rate_limit_floor": floor, "cron": cron});
                if cron.is_none() {
                    body["interval_secs"] = json!(every.unwrap_or(60) * 60);
                }
                let fields = body.as_object_mut().expect("an object");
                fields.retain(|_, v| !v.is_null());
                let rule = hub
                    .send(Method::POST, &format!("/api/v1/orgs/{org}/sync-rules"), Some(body))
                    .await?;
                show(json, &rule, || {
                    println!("Created sync rule {} ({})", rule["id"], text(&rule["url"]))
                });
            }
            SyncCommand::Run { id } => {
                let before =
                    hub.call(Method::GET, &format!("/api/v1/sync-rules/{id}/runs?limit=1")).await?;
                let after = before["runs"][0]["id"].as_i64().unwrap_or(0);
                hub.call(Method::POST, &format!("/api/v1/sync-rules/{id}/run")).await?;
                let runs = hub
                    .call(
                        Method::GET,
                        &format!("/api/v1/sync-rules/{id}/runs?wait=60&after={after}&limit=1"),
                    )
                    .await?;
                let run = &runs["runs"][0];
                show(json, run, || print_run(run));
            }
            SyncCommand::Runs { id } => {
                let runs = hub.call(Method::GET, &format!("/api/v1/sync-rules/{id}/runs")).await?;
                show(json, &runs, || {
                    runs["runs"].as_array().into_iter().flatten().for_each(print_run)
                });
            }
            SyncCommand::Rm { id } => {
                hub.call(Method::DELETE, &format!("/api/v1/sync-rules/{id}")).await?;
                println!("Deleted sync rule {id}");
            }
        }
        Ok(())
    })
}

fn print_run(run: &Value) {
    println!(
        "run {} {} at {}{}",
        run["id"],
        text(&run["state"]),
        text(&run["started_at"]),
        run["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default()
    );
    for tag in run["tags"].as_array().into_iter().flatten() {
        println!("  {:<24} {}", text(&tag["tag"]), text(&tag["outcome"]));
    }
}
