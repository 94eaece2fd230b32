//! `Settings`: what the server's configuration tells the registry: how indexing reads
//! images, and the bounds on what callers may leave stored (open upload sessions,
//! cached DataPacks).

use std::time::Duration;

pub use imagehub_metadata::{UploadCaps, UploadScope};

use crate::indexer::IndexSettings;

/// Everything configurable below the HTTP edge; [`Default`] suits a fresh install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub index: IndexSettings,
    /// Upload sessions open at once, per user (anonymous callers count as one) and per
    /// repository; beyond, starting another is refused with 429.
    pub uploads: UploadCaps,
    pub datapacks: DataPackLimits,
}

/// DataPacks are cached results: the most kept, and how long an unused one stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataPackLimits {
    pub kept: u32,
    pub max_age: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            index: IndexSettings::default(),
            uploads: UploadCaps { per_owner: 1000, per_repository: 500 },
            datapacks: DataPackLimits {
                kept: 10_000,
                max_age: Duration::from_secs(90 * 24 * 3600),
            },
        }
    }
}
