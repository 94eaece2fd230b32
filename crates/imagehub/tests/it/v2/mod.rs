//! HTTP-level tests of the `/v2` API: the four workflows of the OCI distribution-spec
//! conformance suite (pull, push, content discovery, content management), re-created from
//! the specification, plus error-case and edge-case tests of our own.

mod fixtures;

mod discovery;
mod management;
mod pull;
mod push;

mod base;
mod blobs;
mod concurrency;
mod errors;
mod listing;
mod manifests;
mod uploads;
