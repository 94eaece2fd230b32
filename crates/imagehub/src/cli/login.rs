//! `imagehub login` and `imagehub logout`: credentials checked against the registry,
//! then kept where `docker login` keeps them (a credential helper, or `config.json`).

use std::io::BufRead as _;

use imagehub_client::{CredentialStore, Credentials};

use super::{ClientArgs, Failure, block_on, client};

/// The registry `imagehub serve` listens on by default.
pub const DEFAULT_REGISTRY: &str = "127.0.0.1:5000";

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  imagehub login 127.0.0.1:5000 -u alice\n  \
                        echo \"$TOKEN\" | imagehub login hub.example.com -u alice --password-stdin\n\n\
                        An access token (ihp_…) works as the password.")]
pub struct LoginArgs {
    /// The registry (host[:port]); $IMAGEHUB_REGISTRY or 127.0.0.1:5000 by default.
    registry: Option<String>,
    /// User name.
    #[arg(short, long)]
    username: String,
    /// Read the password (or access token) from standard input.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  imagehub logout\n  imagehub logout hub.example.com")]
pub struct LogoutArgs {
    /// The registry; $IMAGEHUB_REGISTRY or 127.0.0.1:5000 by default.
    registry: Option<String>,
}

/// The registry named, or the default one.
pub fn registry_or_default(registry: Option<String>) -> String {
    registry
        .or_else(|| std::env::var("IMAGEHUB_REGISTRY").ok().filter(|r| !r.is_empty()))
        .unwrap_or_else(|| DEFAULT_REGISTRY.to_string())
}

pub fn login(args: LoginArgs) -> Result<(), Failure> {
    let registry = registry_or_default(args.registry);
    let password = match args.password_stdin {
        true => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure::new(format!("reading the password: {e}")))?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        false => rpassword::prompt_password("Password: ").map_err(|e| {
            Failure::new(format!(
                "reading the password: {e} (use --password-stdin when there is no terminal)"
            ))
        })?,
    };
    if password.is_empty() {
        return Err(Failure::new("the password is empty"));
    }
    let credentials = Credentials::basic(args.username.clone(), password.clone());
    let client = client(&args.client, &registry)?;
    block_on(async {
        client.check_credentials(&registry, &credentials).await.map_err(|e| {
            let refused = matches!(e, imagehub_client::ClientError::Unauthorized { .. });
            let failure = Failure::from_client(e, &registry);
            match refused {
                true => Failure {
                    hint: Some(
                        "check the user name and password (an access token works as a password)"
                            .into(),
                    ),
                    ..failure
                },
                false => failure,
            }
        })
    })?;
    let store = CredentialStore::from_env();
    let kept = store.store(&registry, &args.username, &password)?;
    println!("Login succeeded: credentials for {registry} kept in {kept}");
    Ok(())
}

pub fn logout(args: LogoutArgs) -> Result<(), Failure> {
    let registry = registry_or_default(args.registry);
    match CredentialStore::from_env().erase(&registry)? {
        true => println!("Removed the credentials for {registry}"),
        false => println!("Not logged in to {registry}"),
    }
    Ok(())
}
