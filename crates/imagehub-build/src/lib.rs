//! Building sealos cluster images (seed 003) without a container runtime: a recipe's
//! Kubefile (`kubefile`) is a subset of a Dockerfile with no `RUN`; the container images
//! the app deploys are found in its `manifests/`, `images/shim/` and `charts/`
//! (`images`) and saved beside the Kubefile as a registry's filesystem tree
//! (`registry_dir`), so the cluster image carries every image it needs.

pub mod build;
pub mod images;
pub mod kubefile;
pub mod layer;
pub mod recipe;
pub mod registry_dir;

pub use build::{BuildRequest, Built, WORK_DIR, build};
pub use images::{FoundImage, ImageList, find_images};
pub use kubefile::{Base, Instruction, Kubefile, KubefileError};
pub use layer::Compression;
pub use recipe::{
    Command, CommandError, InitArgs, KUBEFILE_NAMES, Recipe, copy_recipe, locate, parse_command,
    prepare_copy, run_init,
};
pub use registry_dir::{LocalBlobs, RegistryDir, SaveOptions, SaveReport, save_images};

use std::path::Path;

/// Why a build failed, in words for the person who started it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Kubefile(#[from] KubefileError),
    /// Something in the recipe is wrong (a file, a chart, an image reference).
    #[error("{message}")]
    Recipe { message: String },
    /// The repository has no recipe for the app asked for.
    #[error("{message}")]
    NoRecipe { message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// Fetching an image the cluster image carries failed.
    #[error("{image} (from {source_of}): {error}")]
    Image { image: String, source_of: String, error: Box<imagehub_client::ClientError> },
}

impl BuildError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> BuildError {
        BuildError::Io { path: path.display().to_string(), message: e.to_string() }
    }
}
