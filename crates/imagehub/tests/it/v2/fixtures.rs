//! Test content for the conformance workflows: per-workflow configs and manifests, a layer,
//! blobs for streamed and chunked uploads, and the artifacts used by the referrers checks.

use serde_json::{Value, json};

use crate::support::registry::{
    OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, base64, descriptor, random_bytes,
    sha256_digest,
};

/// Which workflow an image belongs to; each gets its own config, hence its own manifest digest.
#[derive(Clone, Copy)]
pub enum Slot {
    Pull0 = 0,
    Pull1 = 1,
    Push = 2,
    Discovery = 3,
    Management = 4,
    /// The image the referrers artifacts point at.
    Subject = 5,
    /// An image never pushed in the discovery repository: a missing subject.
    MissingSubject = 6,
}

pub const SLOTS: usize = 7;

/// The known sha256 digest of the two-byte JSON `{}` (the OCI "empty" descriptor).
pub const EMPTY_JSON_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

pub const ANNOTATION_KEY: &str = "org.example.conformance.check";
pub const ARTIFACT_TYPE_A: &str = "application/vnd.example.sbom.alpha";
pub const ARTIFACT_TYPE_B: &str = "application/vnd.example.signature.beta";
pub const ARTIFACT_TYPE_INDEX: &str = "application/vnd.example.bundle.gamma";

/// A tag that is not a valid tag and never names a manifest.
pub const NONEXISTENT_MANIFEST: &str = ".INVALID_MANIFEST_NAME";
pub const DEFAULT_TAG: &str = "tagtest0";

/// Digest of content that is never pushed.
pub fn dummy_digest() -> String {
    sha256_digest(b"content that no test ever pushes")
}

/// A blob uploaded in two chunks.
pub struct ChunkedBlob {
    pub data: Vec<u8>,
    pub split: usize,
}

impl ChunkedBlob {
    /// `size` bytes split just after the middle, as the upstream suite does.
    pub fn new(size: usize) -> ChunkedBlob {
        ChunkedBlob { data: random_bytes(size, 0xB10B), split: size / 2 + 1 }
    }

    /// Honours an `OCI-Chunk-Min-Length` so that the first chunk is at least that long.
    pub fn for_min_chunk(min: Option<usize>) -> ChunkedBlob {
        let blob = ChunkedBlob::new(42);
        match min {
            Some(min) if min > blob.split => ChunkedBlob::new(min * 2 - 2),
            _ => blob,
        }
    }

    pub fn first(&self) -> &[u8] {
        &self.data[..self.split]
    }

    pub fn second(&self) -> &[u8] {
        &self.data[self.split..]
    }

    pub fn first_range(&self) -> String {
        format!("0-{}", self.split - 1)
    }

    pub fn digest(&self) -> String {
        sha256_digest(&self.data)
    }
}

/// Everything the conformance workflows push.
pub struct Data {
    pub configs: Vec<Vec<u8>>,
    pub layer: Vec<u8>,
    pub manifests: Vec<Vec<u8>>,
    /// A manifest without layers and without a `mediaType` field.
    pub empty_layer_manifest: Vec<u8>,
    /// A 42-byte blob pushed by a streamed upload and later cross-mounted.
    pub blob_a: Vec<u8>,
    pub empty_json: Vec<u8>,
    pub ref_blob_a: Vec<u8>,
    pub ref_blob_b: Vec<u8>,
    /// Artifact whose config media type is artifact type A, subject = `Slot::Subject`.
    pub refs_a_config: Vec<u8>,
    /// Artifact with `artifactType` A and an empty config, subject = `Slot::Subject`.
    pub refs_a_layer: Vec<u8>,
    pub refs_b_config: Vec<u8>,
    pub refs_b_layer: Vec<u8>,
    /// Like `refs_b_layer` but its subject (`Slot::MissingSubject`) is never pushed; no annotations.
    pub refs_c_layer: Vec<u8>,
    /// An index artifact over `refs_a_config` and `refs_a_layer`, subject = `Slot::Subject`.
    pub refs_index: Vec<u8>,
}

impl Data {
    pub fn new() -> Data {
        let configs: Vec<Vec<u8>> = (0..SLOTS).map(config_for).collect();
        let layer = random_bytes(137, 0x1A7E5);
        let manifests: Vec<Vec<u8>> =
            configs.iter().map(|c| manifest_with_extras(c, &layer)).collect();

        let empty_layer_manifest = pretty(&json!({
            "schemaVersion": 2,
            "config": config_descriptor_with_extras(&configs[Slot::Push as usize]),
            "layers": [],
        }));

        let empty_json = b"{}".to_vec();
        let ref_blob_a = b"an sbom, for the referrers checks".to_vec();
        let ref_blob_b = b"a signature, for the referrers checks".to_vec();
        let subject = descriptor(OCI_MANIFEST, &manifests[Slot::Subject as usize]);
        let missing_subject = descriptor(OCI_MANIFEST, &manifests[Slot::MissingSubject as usize]);

        let refs_a_config = pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(ARTIFACT_TYPE_A, &ref_blob_a),
            "layers": [descriptor(OCI_EMPTY, &empty_json)],
            "subject": subject,
            "annotations": { ANNOTATION_KEY: "config a" },
        }));
        let refs_a_layer = pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE_A,
            "config": descriptor(OCI_EMPTY, &empty_json),
            "layers": [descriptor(ARTIFACT_TYPE_A, &ref_blob_a)],
            "subject": subject,
            "annotations": { ANNOTATION_KEY: "layer a" },
        }));
        let refs_b_config = pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(ARTIFACT_TYPE_B, &ref_blob_b),
            "layers": [descriptor(OCI_EMPTY, &empty_json)],
            "subject": subject,
            "annotations": { ANNOTATION_KEY: "config b" },
        }));
        let refs_b_layer = pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE_B,
            "config": descriptor(OCI_EMPTY, &empty_json),
            "layers": [descriptor(ARTIFACT_TYPE_B, &ref_blob_b)],
            "subject": subject,
            "annotations": { ANNOTATION_KEY: "layer b" },
        }));
        let refs_c_layer = pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE_B,
            "config": descriptor(OCI_EMPTY, &empty_json),
            "layers": [descriptor(ARTIFACT_TYPE_B, &ref_blob_b)],
            "subject": missing_subject,
        }));
        let refs_index = pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": ARTIFACT_TYPE_INDEX,
            "manifests": [
                descriptor(OCI_MANIFEST, &refs_a_config),
                descriptor(OCI_MANIFEST, &refs_a_layer),
            ],
            "subject": subject,
            "annotations": { ANNOTATION_KEY: "index" },
        }));

        Data {
            configs,
            layer,
            manifests,
            empty_layer_manifest,
            blob_a: random_bytes(42, 0xA),
            empty_json,
            ref_blob_a,
            ref_blob_b,
            refs_a_config,
            refs_a_layer,
            refs_b_config,
            refs_b_layer,
            refs_c_layer,
            refs_index,
        }
    }

    pub fn config(&self, slot: Slot) -> &[u8] {
        &self.configs[slot as usize]
    }

    pub fn manifest(&self, slot: Slot) -> &[u8] {
        &self.manifests[slot as usize]
    }

    pub fn manifest_digest(&self, slot: Slot) -> String {
        sha256_digest(self.manifest(slot))
    }

    /// Annotation value expected on each referrer of the subject, by digest.
    pub fn expected_referrer_annotations(&self) -> Vec<(String, &'static str)> {
        vec![
            (sha256_digest(&self.refs_a_config), "config a"),
            (sha256_digest(&self.refs_a_layer), "layer a"),
            (sha256_digest(&self.refs_b_config), "config b"),
            (sha256_digest(&self.refs_b_layer), "layer b"),
            (sha256_digest(&self.refs_index), "index"),
        ]
    }
}

fn pretty(value: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("serialize JSON")
}

/// A config whose author differs per slot, so every slot has its own digest.
fn config_for(slot: usize) -> Vec<u8> {
    pretty(&json!({
        "architecture": "amd64",
        "os": "linux",
        "author": format!("conformance-author-{slot}"),
        "rootfs": { "type": "layers", "diff_ids": [] },
    }))
}

/// A config descriptor carrying the optional `data` field and a field unknown to the spec,
/// both of which a registry must accept.
fn config_descriptor_with_extras(config: &[u8]) -> Value {
    let mut desc = descriptor(OCI_CONFIG, config);
    desc["data"] = Value::String(base64(config));
    desc["unspecifiedExtensionField"] = Value::String(base64(b"any content at all"));
    desc
}

fn manifest_with_extras(config: &[u8], layer: &[u8]) -> Vec<u8> {
    pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_descriptor_with_extras(config),
        "layers": [descriptor(OCI_LAYER, layer)],
    }))
}
