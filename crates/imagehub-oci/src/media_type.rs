//! Media types of manifests and the manifest kinds they denote.

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Config media type of an OCI image; the default `artifactType` of referrers.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The empty config descriptor's media type, used by artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
