//! The client commands of the `imagehub` binary: they talk to any registry through
//! `imagehub-client`, with the credentials docker and podman already keep. Failures
//! exit with a code scripts can tell apart (see [`Failure`]) and a message that says
//! what to do next.

pub mod api;
pub mod build;
pub mod copy;
pub mod docker_archive;
pub mod import;
pub mod layout;
pub mod login;
pub mod look;
pub mod manage;
pub mod progress;
pub mod registries_conf;
pub mod tags;
pub mod transfer;
pub mod unpack;

use std::process::ExitCode;

use imagehub_client::{ClientError, ClientSettings, RegistryClient, RegistrySettings, StoreError};

/// Flags every client command takes.
#[derive(clap::Args, Clone, Debug)]
pub struct ClientArgs {
    /// Allow plain HTTP and unverified TLS for every registry (loopback registries, and
    /// those registries.conf lists as insecure, are always allowed them).
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A command that did not succeed, and the exit code that says how.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    pub hint: Option<String>,
}

/// Exit codes: 0 done, 1 failed, 2 usage (clap's), 3 not found, 4 unauthorized.
pub const FAILED: u8 = 1;
pub const NOT_FOUND: u8 = 3;
pub const UNAUTHORIZED: u8 = 4;

/// The hint when credentials were taken but lack a right.
pub const LACKS_RIGHT: &str = "the account lacks the right: an owner of the namespace can grant it \
     (imagehub org add ORG USER --role developer)";

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure { code: FAILED, message: message.into(), hint: None }
    }

    /// The failure of a request to `registry`, with a hint where one helps.
    pub fn from_client(e: ClientError, registry: &str) -> Failure {
        let (code, hint) = match &e {
            ClientError::NotFound { .. } => (NOT_FOUND, None),
            ClientError::Unauthorized { .. } => {
                (UNAUTHORIZED, Some(format!("run: imagehub login {registry}")))
            }
            ClientError::Denied { .. } => (UNAUTHORIZED, Some(LACKS_RIGHT.into())),
            ClientError::Unreachable { .. } if is_loopback(registry) => {
                (FAILED, Some(format!("is the registry at {registry} running?")))
            }
            ClientError::Unreachable { .. } => {
                (FAILED, Some(format!("is {registry} up? A plain-HTTP registry needs --insecure")))
            }
            ClientError::Untrusted { .. } => {
                (FAILED, Some("add --insecure to skip verifying its certificate".into()))
            }
            _ => (FAILED, None),
        };
        Failure { code, message: e.to_string(), hint }
    }

    pub fn exit(self) -> ExitCode {
        eprintln!("error: {}", printable(&self.message));
        if let Some(hint) = self.hint {
            eprintln!("hint: {}", printable(&hint));
        }
        ExitCode::from(self.code)
    }
}

/// `text` with its control characters shown as escapes: what a registry or hub says
/// is printed to a terminal, and an escape sequence in a description or an error
/// message must not move the cursor, retitle the window or hide what follows.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect::<String>()
        .into()
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::new(e.to_string())
    }
}

/// A client for the user's own machine: any address may be reached, and loopback
/// registries (or all, with `--insecure`) may speak plain HTTP.
pub fn client(args: &ClientArgs, registry: &str) -> Result<RegistryClient, Failure> {
    client_for_all(args, &[registry])
}

/// A client for a command that reads from many registries (a build's images): each
/// loopback or registries.conf-insecure one among `registries` may speak plain HTTP.
pub fn client_for_all(args: &ClientArgs, registries: &[&str]) -> Result<RegistryClient, Failure> {
    let mut settings = ClientSettings {
        any_address: true,
        all_insecure: args.insecure,
        ..ClientSettings::default()
    };
    for registry in registries {
        if is_loopback(registry) || registries_conf::is_insecure(registry) {
            let insecure = RegistrySettings { mirror: None, insecure: true };
            settings.registries.insert(registry.to_string(), insecure);
        }
    }
    RegistryClient::new(settings).map_err(|e| Failure::new(e.to_string()))
}

pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(host, _)| host),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Prints rows under a header, each column as wide as its widest cell (the last one
/// left ragged), or `empty` when there are no rows.
pub fn print_table(header: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| match i == last {
                true => cell.to_string(),
                false => format!("{cell:<width$}", width = widths[i]),
            })
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A small file (JSON, a manifest) read whole, refused past `limit` bytes so that a
/// hostile archive or layout cannot make the client read gigabytes into memory.
pub fn read_small(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {} MiB", limit >> 20)));
    }
    Ok(bytes)
}

/// Runs an async command on a small runtime.
pub fn block_on<F: std::future::Future<Output = Result<(), Failure>>>(
    future: F,
) -> Result<(), Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("starting the runtime: {e}")))?
        .block_on(future)
}
