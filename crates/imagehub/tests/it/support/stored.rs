//! What a test server holds in its blob store, looked at through the store itself, so
//! the same assertion holds on the filesystem and in a bucket (the suite runs on both).

use imagehub_blobstore::BlobStore;
use imagehub_oci::Digest;
use imagehub_testkit::TestServer;

/// The server's blob store, opened as the server opens it.
pub async fn blob_store(server: &TestServer) -> BlobStore {
    let s3 = server.s3().map(|s3| s3.settings());
    BlobStore::open(server.data_dir(), s3.as_ref()).await.expect("open the server's blob store")
}

/// Whether the store holds the bytes of `digest` (`sha256:…`).
pub async fn holds_blob(server: &TestServer, digest: &str) -> bool {
    let digest: Digest = digest.parse().expect("a valid digest");
    blob_store(server).await.stat(&digest).await.expect("stat the blob").is_some()
}
