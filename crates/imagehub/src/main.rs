//! The `imagehub` binary: `serve` runs the registry; the client commands (`login`,
//! `logout`, `tags`, …) in `cli/` talk to it, or to any registry.

mod cli;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use imagehub_server::GcOptions;
use imagehub_server::config::{Config, KNOBS, env_var_for};

/// imagehub: a self-hosted container image hub in one binary.
#[derive(Parser)]
#[command(version, about, after_long_help = knobs_help(), after_help = knobs_help())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry server (plain HTTP; SQLite and blobs under the data directory).
    #[command(after_help = knobs_help())]
    Serve(ServeArgs),
    /// Print the effective configuration (defaults, file, environment and flags merged).
    #[command(
        after_help = "Example:\n  IMAGEHUB_SERVER__LISTEN=0.0.0.0:5000 imagehub config --config imagehub.toml"
    )]
    Config(ServeArgs),
    /// Remove manifests and blobs that no tag and no index references (safe while the
    /// server runs: nothing younger than the grace period is touched).
    #[command(
        after_help = "Examples:\n  imagehub gc --dry-run\n  imagehub gc --data-dir /var/lib/imagehub --grace-period-secs 600"
    )]
    Gc(GcArgs),
    /// Move this hub to the scale-out backends: copy its metadata into an empty
    /// PostgreSQL database (all or nothing, every manifest digest checked) and its blobs
    /// into an S3-compatible bucket (verified, resumable), then set metadata.url and
    /// [storage.s3]. Stop the hub first: what it writes during the copy is not copied.
    #[command(
        after_help = "Example:\n  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… imagehub migrate --data-dir /var/lib/imagehub \\\n    --to postgres://imagehub:secret@db.internal/imagehub \\\n    --blobs-to 's3://imagehub?endpoint=http://127.0.0.1:3900&region=garage&path_style=true'"
    )]
    Migrate(MigrateArgs),
    /// Log in to a registry: check the credentials, then keep them where docker does.
    Login(cli::login::LoginArgs),
    /// Forget the credentials kept for a registry.
    Logout(cli::login::LogoutArgs),
    /// List the tags of a repository in any registry.
    Tags(cli::tags::TagsArgs),
    /// Search a hub's repositories (names, keywords, descriptions).
    Search(cli::look::SearchArgs),
    /// Show an image of a hub: base info per platform, details and where they come from.
    Inspect(cli::look::ImageArgs),
    /// Delete an image (a tag, or a manifest by digest) from a hub.
    Rm(cli::look::ImageArgs),
    /// Push an image from an OCI layout, an OCI archive or a `docker save` tarball, with a
    /// README and details if given.
    Push(cli::transfer::PushArgs),
    /// Pull an image into an OCI layout, an OCI archive or a `docker save` tarball.
    Pull(cli::transfer::PullArgs),
    /// Build a sealos cluster image from a recipe (seed 003): the images it deploys
    /// saved into registry/, the Kubefile applied, no container runtime.
    Build(cli::build::BuildArgs),
    /// Copy an image between registries (or within one): all platforms, digests kept.
    Copy(cli::copy::CopyArgs),
    /// Ask a hub to import an image from another registry, and follow the job.
    Import(cli::import::ImportArgs),
    /// Create or change what imagehub.sealos.io/v1 manifests describe (Image,
    /// Repository, Organization, DataPack).
    Apply(cli::manage::ApplyArgs),
    /// Print a namespace's images, repositories or organization as manifests.
    Export(cli::manage::ExportArgs),
    /// Organizations and their members.
    Org(cli::manage::OrgArgs),
    /// Your access tokens.
    Token(cli::manage::TokenArgs),
    /// Sync rules: keep an upstream repository's selected tags copied into a hub.
    Sync(cli::manage::SyncArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  imagehub completions bash > /etc/bash_completion.d/imagehub"
    )]
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff).
    #[command(after_help = "Example:\n  imagehub man > /usr/local/share/man/man1/imagehub.1")]
    Man,
}

#[derive(clap::Args)]
struct GcArgs {
    #[command(flatten)]
    storage: ServeArgs,
    /// List what would be removed and how many bytes, without removing anything.
    #[arg(long)]
    dry_run: bool,
    /// Keep anything written less than this many seconds ago; overrides `gc.grace_period_secs`.
    #[arg(long, value_name = "SECS")]
    grace_period_secs: Option<u64>,
}

#[derive(clap::Args)]
#[group(id = "target", required = true, multiple = true, args = ["to", "blobs_to"])]
struct MigrateArgs {
    #[command(flatten)]
    storage: ServeArgs,
    /// An empty PostgreSQL database for the metadata: `postgres://USER:PASSWORD@HOST/DB`.
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// The bucket: `s3://BUCKET?endpoint=URL[&region=R][&path_style=true]`; the keys come
    /// from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(long, value_name = "URL")]
    blobs_to: Option<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file; values in it override the built-in defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on; overrides `server.listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Data directory; overrides `storage.data_dir`.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl ServeArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if let Some(data_dir) = &self.data_dir {
            config.storage.data_dir = data_dir.clone();
        }
        config.validate()?;
        Ok(config)
    }
}

fn knobs_help() -> String {
    let mut help = String::from(
        "Configuration: built-in defaults, then --config FILE (TOML, [section] key = value),\n\
         then environment variables, then flags. Every knob:\n",
    );
    for (key, doc) in KNOBS {
        help.push_str(&format!("  {key:<30} {:<38} {doc}\n", env_var_for(key)));
    }
    help
}

fn main() -> std::process::ExitCode {
    let done = match Cli::parse().command {
        Command::Serve(args) => return server_side(args.load().and_then(serve)),
        Command::Gc(args) => return server_side(gc(args)),
        Command::Migrate(args) => return server_side(migrate(args)),
        Command::Config(args) => {
            return server_side(args.load().and_then(|c| toml_of(&c)).map(|t| print!("{t}")));
        }
        Command::Login(args) => cli::login::login(args),
        Command::Logout(args) => cli::login::logout(args),
        Command::Tags(args) => cli::tags::tags(args),
        Command::Search(args) => cli::look::search(args),
        Command::Inspect(args) => cli::look::inspect(args),
        Command::Rm(args) => cli::look::rm(args),
        Command::Push(args) => cli::transfer::push(args),
        Command::Pull(args) => cli::transfer::pull(args),
        Command::Copy(args) => cli::copy::copy(args),
        Command::Build(args) => cli::build::build(args),
        Command::Import(args) => cli::import::import(args),
        Command::Apply(args) => cli::manage::apply(args),
        Command::Export(args) => cli::manage::export(args),
        Command::Org(args) => cli::manage::org(args),
        Command::Token(args) => cli::manage::token(args),
        Command::Sync(args) => cli::manage::sync(args),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "imagehub", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            use clap::CommandFactory as _;
            let page = clap_mangen::Man::new(Cli::command());
            page.render(&mut std::io::stdout()).map_err(|e| cli::Failure::new(e.to_string()))
        }
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

/// The exit of a server-side command.
fn server_side(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", causes_once(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `error` and its causes on one line, a colon before each, leaving out a cause whose
/// message is already on the line: many errors (ours, sqlx's, object_store's) print
/// their cause inside their own message as well as giving it as their source.
fn causes_once(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if line.contains(&message) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&message);
    }
    line
}

/// The configuration as TOML, its secrets hidden (it is printed, and printouts travel).
fn toml_of(config: &Config) -> anyhow::Result<String> {
    toml::to_string(&config.redacted()).context("serialising config")
}

fn serve(config: Config) -> anyhow::Result<()> {
    imagehub_server::logging::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let server = imagehub_server::Server::bind(config).await?;
        server.run(shutdown_signal()).await
    })
}

fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let config = args.storage.load()?;
    imagehub_server::logging::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    if let Some(url) = &args.to {
        let copy = runtime.block_on(imagehub_server::migrate_metadata(&config, url))?;
        let tables = copy.rows.iter().filter(|(_, n)| *n > 0);
        let counts = tables.map(|(table, n)| format!("{table} {n}")).collect::<Vec<_>>();
        println!(
            "copied the metadata ({}); {} manifest digests verified",
            counts.join(", "),
            copy.manifests_verified
        );
        println!("now set metadata.url to this database (see README, \"Metadata in PostgreSQL\")");
    }
    if let Some(bucket) = &args.blobs_to {
        migrate_blobs(&runtime, &config, bucket)?;
    }
    Ok(())
}

fn migrate_blobs(
    runtime: &tokio::runtime::Runtime,
    config: &imagehub_server::config::Config,
    bucket: &str,
) -> anyhow::Result<()> {
    let key = |name: &str| {
        std::env::var(name).with_context(|| format!("{name} must hold the bucket's key"))
    };
    let to = imagehub_server::config::S3Config::from_url(
        bucket,
        key("AWS_ACCESS_KEY_ID")?,
        key("AWS_SECRET_ACCESS_KEY")?,
    )
    .map_err(|e| anyhow::anyhow!("--blobs-to {bucket}: {e}"))?;
    let done = std::sync::atomic::AtomicU64::new(0);
    let progress = |_: &imagehub_oci::Digest, _: u64| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n.is_multiple_of(100) {
            eprintln!("{n} blobs done");
        }
    };
    let report = runtime.block_on(imagehub_server::migrate_blobs(config, &to, &progress))?;
    println!(
        "copied {} blobs ({} bytes), {} already in the bucket; every digest verified",
        report.copied, report.copied_bytes, report.present
    );
    println!(
        "now set [storage.s3] to this bucket (see README, \"Blobs in an S3-compatible bucket\")"
    );
    Ok(())
}

fn gc(args: GcArgs) -> anyhow::Result<()> {
    let config = args.storage.load()?;
    imagehub_server::logging::init(&config.log);
    let grace = args.grace_period_secs.unwrap_or(config.gc.grace_period_secs);
    let options =
        GcOptions { grace_period: std::time::Duration::from_secs(grace), dry_run: args.dry_run };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(imagehub_server::collect_garbage(&config, options))?;
    if report.busy {
        println!("another garbage collection is running (on this hub's database); nothing done");
        return Ok(());
    }
    let verb = if report.dry_run { "would remove" } else { "removed" };
    println!("{verb} {} manifests ({} bytes)", report.manifests, report.manifest_bytes);
    println!("{verb} {} blob links", report.blob_links);
    println!("{verb} {} blobs ({} bytes)", report.blobs, report.blob_bytes);
    println!("{verb} {} orphaned blob files ({} bytes)", report.orphan_files, report.orphan_bytes);
    println!(
        "bytes freed: {}{}",
        report.bytes_freed(),
        if report.dry_run { " (dry run)" } else { "" }
    );
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its cause and also gives it as its source.
    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "outer: {}", self.0)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let inner = std::io::Error::other("the bucket is gone");
        let error = anyhow::Error::new(Outer(inner)).context("opening storage");
        assert_eq!(causes_once(&error), "opening storage: outer: the bucket is gone");
        let plain = anyhow::anyhow!("disk full").context("writing");
        assert_eq!(causes_once(&plain), "writing: disk full");
    }
}
