//! What an image says about itself, read without unpacking it: the `/README.md` of its
//! root filesystem (found by streaming the layers from the top down, honouring
//! whiteouts, stopping at the first answer), the README's YAML front matter, and the
//! OCI labels and annotations that fill what the README leaves empty.
//!
//! Pure and synchronous: callers hand in readers for the layer blobs (from the blob
//! store, on a blocking thread) and get typed details back. No database, no HTTP.

mod budget;
mod details;
mod front_matter;
mod layer;
mod readme;
mod tar_walk;

pub use budget::{Budget, LimitExceeded, Limits};
pub use details::{DetailSource, Details, DetailsEdit, InvalidDetail, details_from_labels};
pub use front_matter::{Readme, parse_readme};
pub use layer::{Compression, LayerError};
pub use readme::{Layer, MAX_README_BYTES, ReadmeSearch, find_readme};
pub use tar_walk::MAX_EXTENSION_BYTES;
