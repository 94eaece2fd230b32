//! Layer blobs as tar streams: plain, gzip or zstd, told by the media type and, when the
//! media type does not say (Docker's `rootfs.diff.tar.gzip`, artifacts, odd pushers),
//! by the first bytes.

use std::io::{self, BufRead, BufReader, Read};

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("reading layer {digest}: {source}")]
    Io { digest: String, source: io::Error },
    #[error("layer {digest} is not a tar archive: {detail}")]
    NotTar { digest: String, detail: String },
    #[error("reading layer {digest} stopped: {limit}")]
    Limit { digest: String, limit: crate::LimitExceeded },
}

/// How a layer's tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// From the media type's suffix; `None` when the media type names no compression
    /// and the stream itself must tell.
    fn from_media_type(media_type: &str) -> Option<Compression> {
        if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
            Some(Compression::Gzip)
        } else if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
            Some(Compression::Zstd)
        } else if media_type.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }

    fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// The decompressed tar stream of a layer blob.
pub fn tar_stream(
    media_type: &str,
    blob: Box<dyn Read + Send>,
) -> io::Result<Box<dyn Read + Send>> {
    let mut buffered = BufReader::with_capacity(64 * 1024, blob);
    let compression = match Compression::from_media_type(media_type) {
        Some(c) => c,
        None => Compression::sniff(buffered.fill_buf()?),
    };
    Ok(match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_and_magic_bytes() {
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar"),
            Some(Compression::None)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::from_media_type("application/octet-stream"), None);
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(&ZSTD_MAGIC), Compression::Zstd);
        assert_eq!(Compression::sniff(b"README.md\0"), Compression::None);
    }
}
