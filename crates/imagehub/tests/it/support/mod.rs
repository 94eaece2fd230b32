//! What every integration test shares: one fully read [`Reply`] with its `expect_*`
//! assertions, the `/v2` client over a test server (`registry`), and the hub with
//! accounts, credentials and the management API (`hub`); CNCF distribution as an
//! upstream (`distribution`), and a proxy in front of it that throttles or holds on cue
//! (`proxy`); what a server holds in its blob store, whichever it is (`stored`).

pub mod browser;
pub mod distribution;
pub mod hub;
pub mod proxy;
pub mod registry;
pub mod reply;
pub mod s3;
pub mod stored;
