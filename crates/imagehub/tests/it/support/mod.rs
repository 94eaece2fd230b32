//! What every integration test shares: one fully read [`Reply`] with its `expect_*`
//! assertions, the `/v2` client over a test server (`registry`), and the hub with
//! accounts, credentials and the management API (`hub`); CNCF distribution as an
//! upstream (`distribution`), and a proxy in front of it that throttles or holds on cue
//! (`proxy`).

pub mod browser;
pub mod distribution;
pub mod hub;
pub mod proxy;
pub mod registry;
pub mod reply;
pub mod s3;
