//! The parts of an image config (OCI image config, Docker's is the same shape) the hub
//! reads: the platform and labels for indexing, and what the image page shows.

use std::collections::BTreeMap;

use imagehub_oci::Descriptor;
use serde::Deserialize;

use crate::{CoreError, Registry};

/// Largest config blob read (real configs are a few KiB).
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// An image config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
    pub created: Option<String>,
    pub config: Option<RunConfig>,
    pub history: Vec<HistoryEntry>,
}

/// How a container of the image runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Env")]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "WorkingDir")]
    pub working_dir: Option<String>,
    #[serde(rename = "User")]
    pub user: Option<String>,
    /// Keys only (`80/tcp`); the values are empty objects.
    #[serde(rename = "ExposedPorts")]
    pub exposed_ports: Option<BTreeMap<String, serde::de::IgnoredAny>>,
}

/// One step of how the image was built.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HistoryEntry {
    pub created: Option<String>,
    pub created_by: Option<String>,
    pub empty_layer: bool,
}

impl ImageConfig {
    /// The `created_by` of each layer, in layer order: history entries that made no
    /// layer are skipped. `None` where the history says nothing about a layer.
    pub fn layer_commands(&self, layers: usize) -> Vec<Option<String>> {
        let mut commands: Vec<Option<String>> = self
            .history
            .iter()
            .filter(|entry| !entry.empty_layer)
            .map(|entry| entry.created_by.clone())
            .take(layers)
            .collect();
        commands.resize(layers, None);
        commands
    }
}

impl Registry {
    /// The parsed config, or why it could not be read as an image config.
    pub(crate) async fn read_config(
        &self,
        config: &Descriptor,
    ) -> Result<Result<ImageConfig, String>, CoreError> {
        if config.size > MAX_CONFIG_BYTES {
            return Ok(Err(format!(
                "config blob is {} bytes, more than the {MAX_CONFIG_BYTES} read",
                config.size
            )));
        }
        let bytes = self.blobs.read_to_vec(&config.digest, MAX_CONFIG_BYTES).await?;
        Ok(match serde_json::from_slice::<ImageConfig>(&bytes) {
            Ok(parsed) => Ok(parsed),
            // Artifacts have configs that are not image configs; that is not a failure.
            Err(_)
                if !config.media_type.contains("image.config")
                    && !config.media_type.contains("container.image") =>
            {
                Ok(ImageConfig::default())
            }
            Err(e) => Err(format!("config is not a valid image config: {e}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_commands_skip_history_without_layers() {
        let config: ImageConfig = serde_json::from_str(
            r#"{"history": [
                {"created_by": "ADD rootfs /"},
                {"created_by": "ENV A=1", "empty_layer": true},
                {"created_by": "RUN make"}
            ], "config": {"ExposedPorts": {"80/tcp": {}}}}"#,
        )
        .expect("config");
        assert_eq!(
            config.layer_commands(3),
            [Some("ADD rootfs /".to_string()), Some("RUN make".to_string()), None]
        );
        assert_eq!(config.layer_commands(1), [Some("ADD rootfs /".to_string())]);
        let ports = config.config.and_then(|c| c.exposed_ports).expect("ports");
        assert_eq!(ports.keys().collect::<Vec<_>>(), ["80/tcp"]);
    }
}
