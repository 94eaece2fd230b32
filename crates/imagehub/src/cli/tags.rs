//! `imagehub tags REPOSITORY`: the tags of a repository in any registry.

use imagehub_client::{CredentialStore, RemoteReference, Target};

use super::{ClientArgs, Failure, block_on, client};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  imagehub tags 127.0.0.1:5000/team/app\n  imagehub tags nginx --json"
)]
pub struct TagsArgs {
    /// The repository, as docker names it (`nginx`, `ghcr.io/owner/repo`, `host:5000/team/app`).
    repository: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn tags(args: TagsArgs) -> Result<(), Failure> {
    let reference: RemoteReference =
        args.repository.parse().map_err(|e| Failure { code: 2, ..Failure::new(format!("{e}")) })?;
    let registry = reference.registry.clone();
    let credentials =
        CredentialStore::from_env().get(&registry, Some(reference.repository.as_str()))?;
    let client = client(&args.client, &registry)?;
    let tags = block_on_tags(&client, &reference, &credentials)?;
    if args.client.json {
        let name = format!("{}/{}", reference.registry, reference.repository);
        println!("{}", serde_json::json!({"name": name, "tags": tags}));
    } else {
        for tag in tags {
            println!("{}", super::printable(&tag));
        }
    }
    Ok(())
}

fn block_on_tags(
    client: &imagehub_client::RegistryClient,
    reference: &RemoteReference,
    credentials: &imagehub_client::Credentials,
) -> Result<Vec<String>, Failure> {
    let mut found = Vec::new();
    block_on(async {
        found = client
            .tags(&Target::of(reference, credentials))
            .await
            .map_err(|e| Failure::from_client(e, &reference.registry))?;
        Ok(())
    })?;
    Ok(found)
}
