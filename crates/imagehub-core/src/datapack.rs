//! DataPacks (seed 001): a kind of info and a list of image names, normalised (checked,
//! deduplicated, sorted) so that equal lists get equal names, and stored under the hash
//! of that normal form. Results are not stored: they are computed for each caller when
//! asked.

use imagehub_oci::ImageName;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// Most names in one DataPack.
pub const MAX_DATAPACK_NAMES: usize = 500;

/// What kind of info a DataPack holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackKind {
    /// Base info.
    Base,
    /// Base info and details.
    Detail,
}

/// A DataPack's spec in normal form; only [`DataPackSpec::new`] and stored specs make one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPackSpec {
    #[serde(rename = "type")]
    kind: PackKind,
    names: Vec<String>,
}

/// Why a spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataPackError {
    #[error("names: 1 to {MAX_DATAPACK_NAMES} image names")]
    Count,
    #[error("names: {name:?} {problem}")]
    Name { name: String, problem: imagehub_oci::NameError },
}

impl DataPackSpec {
    /// Checks every name (`org/repo:tag`, `org/repo@digest`, `org/repo`) and puts the
    /// list in normal form.
    pub fn new(kind: PackKind, mut names: Vec<String>) -> Result<DataPackSpec, DataPackError> {
        if names.is_empty() || names.len() > MAX_DATAPACK_NAMES {
            return Err(DataPackError::Count);
        }
        for name in &names {
            name.parse::<ImageName>()
                .map_err(|problem| DataPackError::Name { name: name.clone(), problem })?;
        }
        names.sort();
        names.dedup();
        Ok(DataPackSpec { kind, names })
    }

    pub fn kind(&self) -> PackKind {
        self.kind
    }

    /// The names as given (each parses as an [`ImageName`]), in normal order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The DataPack's name: `dp-` and the first 32 hex digits of the SHA-256 of the
    /// normal form's JSON.
    pub fn name(&self) -> String {
        format!("dp-{}", &hex::encode(sha2::Sha256::digest(self.to_json().as_bytes()))[..32])
    }

    /// The JSON stored, and hashed into the name.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("specs serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn equal_lists_have_equal_names() {
        let a = DataPackSpec::new(PackKind::Base, names(&["b/x:1", "a/y:2", "b/x:1"])).unwrap();
        let b = DataPackSpec::new(PackKind::Base, names(&["a/y:2", "b/x:1"])).unwrap();
        assert_eq!(a.name(), b.name());
        assert_eq!(a.names(), ["a/y:2", "b/x:1"]);
        let c = DataPackSpec::new(PackKind::Detail, names(&["a/y:2", "b/x:1"])).unwrap();
        assert_ne!(a.name(), c.name());
        // Names stored before this module existed were hashed from the same JSON.
        assert_eq!(b.to_json(), r#"{"type":"base","names":["a/y:2","b/x:1"]}"#);
    }

    #[test]
    fn names_and_counts_are_checked() {
        assert!(
            DataPackSpec::new(PackKind::Base, names(&["labring/mysql:v8.0.25", "labring/mysql"]))
                .is_ok()
        );
        assert!(matches!(DataPackSpec::new(PackKind::Base, Vec::new()), Err(DataPackError::Count)));
        let too_many = (0..=MAX_DATAPACK_NAMES).map(|i| format!("a/b:{i}")).collect();
        assert!(matches!(DataPackSpec::new(PackKind::Base, too_many), Err(DataPackError::Count)));
        for bad in ["Bad/Name:1", "a/b:bad tag", "a/b@sha256:nothex"] {
            assert!(
                matches!(
                    DataPackSpec::new(PackKind::Base, names(&[bad])),
                    Err(DataPackError::Name { .. })
                ),
                "{bad}"
            );
        }
    }
}
