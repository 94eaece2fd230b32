//! Finding `/README.md` in an image's root filesystem without unpacking it: the layers
//! are streamed from the top down and the search stops at the first layer that says
//! anything about the file (holds it, deletes it with a whiteout, or hides everything
//! below with an opaque root).

use std::io::{self, Read};
use std::path::{Component, Path};

use crate::budget::{Budget, Metered, limit_of};
use crate::layer::{LayerError, tar_stream};
use crate::tar_walk::{EntryKind, TarWalk};

/// Longest README kept; the rest is cut off and the cut noted.
pub const MAX_README_BYTES: usize = 1 << 20;

const README: &str = "README.md";
const WHITEOUT: &str = ".wh.README.md";
const OPAQUE: &str = ".wh..wh..opq";

/// One layer of an image, as its manifest lists it (bottom first).
#[derive(Debug, Clone)]
pub struct Layer {
    pub digest: String,
    pub media_type: String,
}

/// What the search found, and how many layers it had to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadmeSearch {
    Found {
        text: String,
        truncated: bool,
        layer: String,
        layers_read: usize,
    },
    /// An upper layer deletes the README (a whiteout, or a non-file in its place).
    Deleted {
        layer: String,
        layers_read: usize,
    },
    NotFound {
        layers_read: usize,
    },
}

/// Searches `layers` (in manifest order, bottom first) from the top down, within
/// `budget`. `open` gives the raw blob of a layer; it is called only for the layers
/// actually read, and at most once per digest in a budget's life.
pub fn find_readme(
    layers: &[Layer],
    mut open: impl FnMut(&Layer) -> io::Result<Box<dyn Read + Send>>,
    budget: &Budget,
) -> Result<ReadmeSearch, LayerError> {
    let mut layers_read = 0;
    for layer in layers.iter().rev() {
        if budget.already_searched(&layer.digest) {
            continue;
        }
        budget
            .check_time()
            .map_err(|limit| LayerError::Limit { digest: layer.digest.clone(), limit })?;
        layers_read += 1;
        let io_error = |source| LayerError::Io { digest: layer.digest.clone(), source };
        let blob = open(layer).map_err(io_error)?;
        // Once the blob is open, every failure is the content's: not gzip, not zstd, not
        // tar, or more than the budget allows.
        let content_error = |e: io::Error| match limit_of(&e) {
            Some(limit) => LayerError::Limit { digest: layer.digest.clone(), limit },
            None => LayerError::NotTar { digest: layer.digest.clone(), detail: e.to_string() },
        };
        match search_layer(&layer.media_type, blob, budget).map_err(content_error)? {
            InLayer::File { text, truncated } => {
                return Ok(ReadmeSearch::Found {
                    text,
                    truncated,
                    layer: layer.digest.clone(),
                    layers_read,
                });
            }
            InLayer::Deleted => {
                return Ok(ReadmeSearch::Deleted { layer: layer.digest.clone(), layers_read });
            }
            InLayer::Opaque => return Ok(ReadmeSearch::NotFound { layers_read }),
            InLayer::Nothing => budget.mark_searched(&layer.digest),
        }
    }
    Ok(ReadmeSearch::NotFound { layers_read })
}

enum InLayer {
    File {
        text: String,
        truncated: bool,
    },
    Deleted,
    /// The root is opaque: nothing below this layer is visible.
    Opaque,
    Nothing,
}

fn search_layer(
    media_type: &str,
    blob: Box<dyn Read + Send>,
    budget: &Budget,
) -> io::Result<InLayer> {
    let mut archive = TarWalk::new(Metered::new(tar_stream(media_type, blob)?, budget));
    let mut opaque = false;
    let mut entries = 0;
    while let Some(entry) = archive.next_entry()? {
        entries += 1;
        budget.count_entry(entries).map_err(io::Error::other)?;
        let Some(name) = root_name(Path::new(&entry.path)) else { continue };
        match name.as_str() {
            README if entry.kind == EntryKind::File => {
                let bytes = archive.read_data(entry.size, MAX_README_BYTES + 1)?;
                let truncated = bytes.len() > MAX_README_BYTES;
                let mut bytes = bytes;
                bytes.truncate(MAX_README_BYTES);
                return Ok(InLayer::File { text: utf8_text(bytes), truncated });
            }
            // A directory or link where the file was: the README is gone from the root.
            README | WHITEOUT => return Ok(InLayer::Deleted),
            OPAQUE => opaque = true,
            _ => {}
        }
    }
    Ok(if opaque { InLayer::Opaque } else { InLayer::Nothing })
}

/// The file name of `path` if it sits directly in the root (`README.md`,
/// `./README.md`, `/README.md`).
fn root_name(path: &Path) -> Option<String> {
    let mut parts =
        path.components().filter(|c| !matches!(c, Component::CurDir | Component::RootDir));
    let first = parts.next()?;
    match (first, parts.next()) {
        (Component::Normal(name), None) => name.to_str().map(str::to_owned),
        _ => None,
    }
}

/// Text from bytes that may end inside a UTF-8 sequence (cut at the size limit) or hold
/// invalid sequences (replaced).
fn utf8_text(mut bytes: Vec<u8>) -> String {
    if let Err(e) = std::str::from_utf8(&bytes)
        && e.error_len().is_none()
    {
        bytes.truncate(e.valid_up_to());
    }
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of (path, contents) regular files; a `None` content makes a directory.
    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, contents) in entries {
            let mut header = tar::Header::new_gnu();
            match contents {
                Some(data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(data.len() as u64);
                    header.set_mode(0o644);
                    builder.append_data(&mut header, path, *data).unwrap();
                }
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    builder.append_data(&mut header, path, io::empty()).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn search(layers: Vec<(&str, Vec<u8>)>) -> ReadmeSearch {
        let refs: Vec<Layer> = layers
            .iter()
            .enumerate()
            .map(|(i, (mt, _))| Layer {
                digest: format!("layer{i}"),
                media_type: (*mt).to_string(),
            })
            .collect();
        find_readme(
            &refs,
            |layer| {
                let i: usize = layer.digest.trim_start_matches("layer").parse().unwrap();
                Ok(Box::new(io::Cursor::new(layers[i].1.clone())) as Box<dyn Read + Send>)
            },
            &unlimited(),
        )
        .unwrap()
    }

    const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    const TGZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const TZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

    #[test]
    fn the_top_layer_wins_and_lower_layers_are_not_read() {
        let bottom = tar_of(&[("README.md", Some(b"old"))]);
        let top = tar_of(&[("./README.md", Some(b"new")), ("etc", None)]);
        let found = search(vec![(TAR, bottom), (TGZ, gzip(&top))]);
        assert_eq!(
            found,
            ReadmeSearch::Found {
                text: "new".into(),
                truncated: false,
                layer: "layer1".into(),
                layers_read: 1
            }
        );
    }

    #[test]
    fn a_whiteout_deletes_the_readme_of_lower_layers() {
        let bottom = tar_of(&[("README.md", Some(b"old"))]);
        let top = tar_of(&[(".wh.README.md", Some(b""))]);
        assert_eq!(
            search(vec![(TAR, bottom), (TAR, top)]),
            ReadmeSearch::Deleted { layer: "layer1".into(), layers_read: 1 }
        );
    }

    #[test]
    fn an_opaque_root_hides_lower_layers() {
        let bottom = tar_of(&[("README.md", Some(b"old"))]);
        let top = tar_of(&[(".wh..wh..opq", Some(b"")), ("bin", None)]);
        assert_eq!(
            search(vec![(TAR, bottom), (TAR, top)]),
            ReadmeSearch::NotFound { layers_read: 1 }
        );
    }

    #[test]
    fn readmes_below_the_root_do_not_count_and_the_search_goes_down() {
        let bottom = tar_of(&[("README.md", Some(b"root one"))]);
        let top = tar_of(&[("docs/README.md", Some(b"nested")), ("app/.wh.README.md", Some(b""))]);
        let zstd_top = zstd::encode_all(&top[..], 1).unwrap();
        let found = search(vec![(TAR, bottom), (TZST, zstd_top)]);
        assert_eq!(
            found,
            ReadmeSearch::Found {
                text: "root one".into(),
                truncated: false,
                layer: "layer0".into(),
                layers_read: 2
            }
        );
    }

    #[test]
    fn compression_is_sniffed_when_the_media_type_does_not_say() {
        let layer = gzip(&tar_of(&[("README.md", Some(b"sniffed"))]));
        let found = search(vec![("application/octet-stream", layer)]);
        assert!(matches!(found, ReadmeSearch::Found { ref text, .. } if text == "sniffed"));
    }

    #[test]
    fn a_huge_readme_is_cut_at_the_limit_on_a_character_boundary() {
        let mut big = "é".repeat(MAX_README_BYTES); // 2 bytes each: twice the limit
        big.push_str("tail");
        let found = search(vec![(TAR, tar_of(&[("README.md", Some(big.as_bytes()))]))]);
        let ReadmeSearch::Found { text, truncated, .. } = found else { panic!("not found") };
        assert!(truncated);
        assert_eq!(text.len(), MAX_README_BYTES);
        assert!(text.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_directory_in_place_of_the_readme_deletes_it() {
        let bottom = tar_of(&[("README.md", Some(b"old"))]);
        let top = tar_of(&[("README.md", None)]);
        assert!(matches!(search(vec![(TAR, bottom), (TAR, top)]), ReadmeSearch::Deleted { .. }));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let refs = [Layer { digest: "bad".into(), media_type: TGZ.into() }];
        let result = find_readme(
            &refs,
            |_| Ok(Box::new(io::Cursor::new(b"not gzip at all".to_vec())) as Box<dyn Read + Send>),
            &unlimited(),
        );
        assert!(result.is_err());
    }

    fn unlimited() -> Budget {
        Budget::new(crate::Limits::default(), Default::default())
    }

    #[test]
    fn a_layer_listed_many_times_is_read_once() {
        let layer = tar_of(&[("bin/app", Some(b"app"))]);
        let refs: Vec<Layer> =
            (0..1000).map(|_| Layer { digest: "same".into(), media_type: TAR.into() }).collect();
        let mut opened = 0;
        let found = find_readme(
            &refs,
            |_| {
                opened += 1;
                Ok(Box::new(io::Cursor::new(layer.clone())) as Box<dyn Read + Send>)
            },
            &unlimited(),
        );
        assert_eq!(found.unwrap(), ReadmeSearch::NotFound { layers_read: 1 });
        assert_eq!(opened, 1);
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_budget() {
        // 64 MiB of zeros in a tar entry, zstd-compressed to a few KiB.
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(64 << 20);
        builder.append_data(&mut header, "zeros", io::repeat(0).take(64 << 20)).unwrap();
        let bomb = zstd::encode_all(&builder.into_inner().unwrap()[..], 3).unwrap();
        assert!(bomb.len() < 64 << 10, "the bomb is small: {} bytes", bomb.len());
        let limits = crate::Limits { layer_bytes: 1 << 20, ..crate::Limits::default() };
        let budget = Budget::new(limits, Default::default());
        let refs = [Layer { digest: "bomb".into(), media_type: TZST.into() }];
        let result = find_readme(
            &refs,
            |_| Ok(Box::new(io::Cursor::new(bomb.clone())) as Box<dyn Read + Send>),
            &budget,
        );
        assert!(
            matches!(
                result,
                Err(LayerError::Limit { limit: crate::LimitExceeded::LayerBytes(_), .. })
            ),
            "{result:?}"
        );
        assert!(budget.bytes_read() < 2 << 20, "stopped near the limit: {}", budget.bytes_read());
    }
}
