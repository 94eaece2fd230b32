//! `imagehub-client` against real registries: CNCF distribution (open, then behind
//! htpasswd) and imagehub itself with accounts (Docker's token flow). What it reads must
//! be byte for byte what was pushed, every digest the same.

use futures_util::StreamExt;
use imagehub_client::{
    ClientError, ClientSettings, Credentials, RegistryClient, RegistrySettings, RemoteReference,
    Target,
};
use imagehub_oci::{Digest, Manifest, Reference};

use crate::support::distribution::Distribution;
use crate::support::hub::{Cred, Hub};
use crate::support::registry::{OCI_MANIFEST, Registry, image_index, push_image};

fn client_for(registry: &str) -> RegistryClient {
    let mut settings = ClientSettings::default();
    let insecure = RegistrySettings { mirror: None, insecure: true };
    settings.registries.insert(registry.to_string(), insecure);
    RegistryClient::new(settings).expect("client")
}

/// Reads every blob `manifest` refers to, each verified by the client.
async fn read_blobs(client: &RegistryClient, target: &Target<'_>, manifest: &[u8]) -> usize {
    let parsed = Manifest::parse(None, manifest).expect("a manifest");
    let mut read = 0;
    for blob in parsed.blob_references() {
        let mut stream = client.blob(target, &blob.digest, Some(blob.size)).await.expect("blob");
        while let Some(chunk) = stream.next().await {
            chunk.expect("verified bytes");
        }
        read += 1;
    }
    read
}

#[tokio::test]
async fn an_index_and_its_images_come_from_distribution_byte_for_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = dir.path().join("storage");
    let open = Distribution::start(&storage, None);
    let upstream = Registry::at(&open.url());
    let (amd64, amd64_digest) = push_image(&upstream, "team/app", "amd64", "amd64").await;
    let (arm64, arm64_digest) = push_image(&upstream, "team/app", "arm64", "arm64").await;
    let index = image_index(&[&amd64, &arm64]);
    let index_digest = upstream
        .push_manifest("team/app", "v1", "application/vnd.oci.image.index.v1+json", &index)
        .await;

    let reference: RemoteReference = format!("{}/team/app:v1", open.host).parse().expect("ref");
    let client = client_for(&reference.registry);
    let anonymous = Credentials::Anonymous;
    let target = Target::of(&reference, &anonymous);
    let head = client.head_manifest(&target, &reference.reference()).await.expect("head");
    assert_eq!(head.and_then(|h| h.digest).map(|d| d.to_string()), Some(index_digest.clone()));
    let fetched = client.manifest(&target, &reference.reference()).await.expect("the index");
    assert_eq!(
        (fetched.bytes.as_ref(), fetched.digest.to_string()),
        (index.as_slice(), index_digest)
    );
    for (bytes, digest) in [(amd64, amd64_digest), (arm64, arm64_digest)] {
        let child = Reference::Digest(digest.parse::<Digest>().expect("digest"));
        let fetched = client.manifest(&target, &child).await.expect("a child");
        assert_eq!(fetched.bytes.as_ref(), bytes.as_slice());
        assert_eq!(fetched.media_type, OCI_MANIFEST);
        assert_eq!(read_blobs(&client, &target, &bytes).await, 2, "config and layer");
    }
    let mut tags = client.tags(&target).await.expect("tags");
    tags.sort();
    assert_eq!(tags, ["amd64", "arm64", "v1"]);
    let missing = client.manifest(&target, &"nosuch".parse().expect("tag")).await;
    assert!(matches!(missing, Err(ClientError::NotFound { .. })), "{missing:?}");
    drop(open);

    // The same content behind htpasswd: the right password reads it, others are refused.
    let guarded = Distribution::start(&storage, Some(("alice", "s3cret-pass")));
    let reference: RemoteReference = format!("{}/team/app:v1", guarded.host).parse().expect("ref");
    let client = client_for(&reference.registry);
    let alice = Credentials::basic("alice", "s3cret-pass");
    let target = Target::of(&reference, &alice);
    let fetched = client.manifest(&target, &reference.reference()).await.expect("with htpasswd");
    assert_eq!(fetched.bytes.as_ref(), index.as_slice());
    let wrong = Credentials::basic("alice", "wrong");
    let refused = client.manifest(&Target::of(&reference, &wrong), &reference.reference()).await;
    assert!(
        matches!(refused, Err(ClientError::Unauthorized { anonymous: false, .. })),
        "{refused:?}"
    );
    let refused =
        client.manifest(&Target::of(&reference, &anonymous), &reference.reference()).await;
    assert!(
        matches!(refused, Err(ClientError::Unauthorized { anonymous: true, .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_private_image_comes_from_imagehub_through_the_token_flow() {
    let hub = Hub::start();
    hub.create_user("olga", "olga-password-1").await;
    let olga = Cred::basic("olga", "olga-password-1");
    let digest = hub.push_with_readme(&olga, "olga/private", "v1", "# Mine").await;
    let host = hub.server().host();

    let reference: RemoteReference = format!("{host}/olga/private:v1").parse().expect("ref");
    let client = client_for(&reference.registry);
    let credentials = Credentials::basic("olga", "olga-password-1");
    let target = Target::of(&reference, &credentials);
    let fetched = client.manifest(&target, &reference.reference()).await.expect("with a token");
    assert_eq!(fetched.digest.to_string(), digest);
    assert!(read_blobs(&client, &target, &fetched.bytes).await >= 2);

    let wrong = Credentials::basic("olga", "not-her-password");
    let refused = client.manifest(&Target::of(&reference, &wrong), &reference.reference()).await;
    assert!(
        matches!(refused, Err(ClientError::Unauthorized { anonymous: false, .. })),
        "{refused:?}"
    );
    let anonymous = Credentials::Anonymous;
    let refused =
        client.manifest(&Target::of(&reference, &anonymous), &reference.reference()).await;
    assert!(
        matches!(refused, Err(ClientError::Unauthorized { anonymous: true, .. })),
        "{refused:?}"
    );
}
