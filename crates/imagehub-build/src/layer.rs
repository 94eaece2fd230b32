//! Layers of a cluster image, reproducible: a `COPY`'s files as a tar whose entries are
//! sorted, owned by root (uid and gid 0, no names) and dated `SOURCE_DATE_EPOCH` (or
//! 0), compressed with gzip (no name or time in its header) or zstd, so that the same
//! recipe gives the same digests on any machine.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use imagehub_oci::{Algorithm, Digest, Hasher};

use crate::BuildError;

/// How layers are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// A file or directory of a layer: where it goes in the image, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path in the image, relative to `/` (`charts/nginx/values.yaml`).
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    File(PathBuf),
    /// A symbolic link, kept as written (never followed).
    Symlink(String),
}

/// A layer written to a file: its digest (of the compressed bytes), size and `diff_id`
/// (of the tar).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BuiltLayer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub media_type: String,
}

/// The media type of an uncompressed layer.
const PLAIN_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Whether most of the entries' bytes (nine tenths) are files already compressed (gzip,
/// zstd, xz, bzip2 by their first bytes): the saved images of `registry/` are. Compressing
/// them again would cost seconds per hundred megabytes and save nothing, so such a layer
/// is stored as a plain tar, which every client reads.
fn mostly_compressed(entries: &[Entry]) -> bool {
    use std::io::Read as _;
    let (mut all, mut compressed) = (0u64, 0u64);
    for entry in entries {
        let EntryKind::File(path) = &entry.kind else { continue };
        let Ok(mut file) = std::fs::File::open(path) else { continue };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut magic = [0u8; 6];
        let read = file.read(&mut magic).unwrap_or(0);
        let magic = &magic[..read];
        all += size;
        let known = magic.starts_with(&[0x1f, 0x8b])
            || magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
            || magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
            || magic.starts_with(b"BZh");
        if known {
            compressed += size;
        }
    }
    all > 0 && compressed * 10 >= all * 9
}

/// The entries `COPY SOURCES DESTINATION` makes, as Docker copies: a directory's
/// contents go into the destination; a file goes to the destination itself, or into it
/// when it ends with `/` or when several files are copied. Sources are relative to
/// `context` and may hold `*`, `?` and `[…]` patterns; `resolve` maps a source path to
/// where its files really are (a platform's `registry/`).
pub fn copy_entries(
    context: &Path,
    sources: &[String],
    destination: &str,
    chmod: Option<u32>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Vec<Entry>, BuildError> {
    let mut matched = Vec::new();
    for source in sources {
        let relative = inside_context(source)?;
        let found = expand(context, &relative, resolve)?;
        if found.is_empty() {
            return Err(BuildError::Recipe {
                message: format!("COPY {source}: nothing in the build context matches it"),
            });
        }
        matched.extend(found);
    }
    let into_directory = destination.ends_with('/') || matched.len() > 1;
    let destination = clean_destination(destination)?;
    let mut entries = Vec::new();
    parents(&destination, into_directory, &mut entries);
    for (relative, real) in matched {
        let meta = std::fs::symlink_metadata(&real).map_err(|e| BuildError::io(&real, e))?;
        if meta.is_dir() {
            if !destination.is_empty() {
                let mode = mode_of(&meta, None);
                entries.push(Entry { path: destination.clone(), kind: EntryKind::Directory, mode });
            }
            walk(&real, &destination, chmod, &mut entries)?;
            continue;
        }
        let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let path = match (into_directory || destination.is_empty(), destination.is_empty()) {
            (true, true) => name.to_string(),
            (true, false) => format!("{destination}/{name}"),
            (false, _) => destination.clone(),
        };
        entries.push(entry(&real, path, &meta, chmod)?);
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    Ok(entries)
}

/// A COPY source as a path inside the context, or a refusal.
fn inside_context(source: &str) -> Result<PathBuf, BuildError> {
    let mut kept = PathBuf::new();
    for component in Path::new(source).components() {
        match component {
            Component::Normal(part) => kept.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(BuildError::Recipe {
                    message: format!("COPY {source}: sources stay inside the build context"),
                });
            }
        }
    }
    Ok(kept)
}

/// The destination as a path relative to `/`, without `.` or `..`.
fn clean_destination(destination: &str) -> Result<String, BuildError> {
    let mut parts: Vec<&str> = Vec::new();
    for part in destination.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// Directory entries for the destination's parents (and the destination itself when
/// files go into it).
fn parents(destination: &str, into_directory: bool, entries: &mut Vec<Entry>) {
    let parts: Vec<&str> = destination.split('/').filter(|p| !p.is_empty()).collect();
    let count = if into_directory { parts.len() } else { parts.len().saturating_sub(1) };
    for end in 1..=count {
        entries.push(Entry {
            path: parts[..end].join("/"),
            kind: EntryKind::Directory,
            mode: 0o755,
        });
    }
}

/// The paths of the context matching `pattern` (a plain path matches itself), sorted,
/// each with where it really is.
fn expand(
    context: &Path,
    pattern: &Path,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Vec<(PathBuf, PathBuf)>, BuildError> {
    let mut found = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy().to_string();
        let mut next = Vec::new();
        for base in found {
            if !part.contains(['*', '?', '[']) {
                let candidate = base.join(&part);
                if std::fs::symlink_metadata(resolve(&context.join(&candidate))).is_ok() {
                    next.push(candidate);
                }
                continue;
            }
            let dir = resolve(&context.join(&base));
            let Ok(read) = std::fs::read_dir(&dir) else { continue };
            let mut names: Vec<String> =
                read.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
            names.sort();
            next.extend(names.into_iter().filter(|n| matches(&part, n)).map(|n| base.join(n)));
        }
        found = next;
    }
    let found: Vec<PathBuf> = found
        .into_iter()
        .filter(|p| !p.as_os_str().is_empty() || pattern.as_os_str().is_empty())
        .collect();
    // A link is copied as a link, but never passed through to reach what it points at:
    // on a hub, a recipe from a pull request could otherwise copy the server's files.
    for path in &found {
        for parent in path.ancestors().skip(1).filter(|p| !p.as_os_str().is_empty()) {
            let real = resolve(&context.join(parent));
            if std::fs::symlink_metadata(&real).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(BuildError::Recipe {
                    message: format!(
                        "COPY {}: {} is a link, which a copy does not pass through",
                        pattern.display(),
                        parent.display()
                    ),
                });
            }
        }
    }
    Ok(found
        .into_iter()
        .map(|p| {
            let real = resolve(&context.join(&p));
            (p, real)
        })
        .collect())
}

/// Shell-style matching of one path component: `*`, `?` and `[abc]`/`[a-z]`/`[!a]`.
fn matches(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|skip| go(&p[1..], &n[skip..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(close) = p.iter().position(|&c| c == ']').filter(|&c| c > 1) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let (negated, set) = match p[1] {
                    '!' | '^' => (true, &p[2..close]),
                    _ => (false, &p[1..close]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != negated && go(&p[close + 1..], &n[1..])
            }
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    go(&pattern, &name)
}

/// Every entry under the directory `dir`, placed under `destination`.
fn walk(
    dir: &Path,
    destination: &str,
    chmod: Option<u32>,
    out: &mut Vec<Entry>,
) -> Result<(), BuildError> {
    let read = std::fs::read_dir(dir).map_err(|e| BuildError::io(dir, e))?;
    let mut children: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        let name = child.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name == crate::build::WORK_DIR {
            continue; // the builder's own folder never goes into an image
        }
        let path = if destination.is_empty() { name } else { format!("{destination}/{name}") };
        let meta = std::fs::symlink_metadata(&child).map_err(|e| BuildError::io(&child, e))?;
        if meta.is_dir() {
            out.push(Entry {
                path: path.clone(),
                kind: EntryKind::Directory,
                mode: mode_of(&meta, None),
            });
            walk(&child, &path, chmod, out)?;
        } else {
            out.push(entry(&child, path, &meta, chmod)?);
        }
    }
    Ok(())
}

fn entry(
    real: &Path,
    path: String,
    meta: &std::fs::Metadata,
    chmod: Option<u32>,
) -> Result<Entry, BuildError> {
    let kind = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(real).map_err(|e| BuildError::io(real, e))?;
        EntryKind::Symlink(target.display().to_string())
    } else if meta.is_file() {
        EntryKind::File(real.to_path_buf())
    } else {
        return Err(BuildError::Recipe {
            message: format!(
                "{}: only files, directories and links go into an image",
                real.display()
            ),
        });
    };
    Ok(Entry { path, kind, mode: mode_of(meta, chmod) })
}

fn mode_of(meta: &std::fs::Metadata, chmod: Option<u32>) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    chmod.unwrap_or(meta.permissions().mode() & 0o7777)
}

/// What decides a layer's bytes, as a digest: the entries (path, kind, mode, and for a
/// file its size and modification time), the epoch and the compression. A build whose
/// layer has the same key takes the layer from its cache instead of writing it again.
pub fn cache_key(
    entries: &[Entry],
    epoch: u64,
    compression: Compression,
) -> Result<Digest, BuildError> {
    use std::os::unix::fs::MetadataExt as _;
    // Bumped whenever the layer format changes, so that old cache entries are not used.
    const FORMAT: u32 = 1;
    let mut hasher = Hasher::new(Algorithm::Sha256);
    hasher.update(format!("{FORMAT}\0{epoch}\0{compression:?}\0").as_bytes());
    for entry in entries {
        let what = match &entry.kind {
            EntryKind::Directory => "d".to_string(),
            EntryKind::Symlink(target) => format!("l{target}"),
            EntryKind::File(path) => {
                let meta = std::fs::metadata(path).map_err(|e| BuildError::io(path, e))?;
                format!("f{}:{}.{}:{}", meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino())
            }
        };
        hasher.update(format!("{}\0{what}\0{:o}\n", entry.path, entry.mode).as_bytes());
    }
    Ok(hasher.finish())
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Hasher,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `entries` as a layer into `file` (created); its digests and size.
pub fn write_layer(
    entries: &[Entry],
    epoch: u64,
    compression: Compression,
    file: &Path,
) -> Result<BuiltLayer, BuildError> {
    let io = |e: std::io::Error| BuildError::io(file, e);
    let out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(file).map_err(io)?);
    if mostly_compressed(entries) {
        // Uncompressed, the layer is its tar: one digest is both.
        let (digest, size, mut out) = write_tar(entries, epoch, out).map_err(io)?;
        out.flush().map_err(io)?;
        out.get_ref().sync_all().map_err(io)?;
        let media_type = PLAIN_TAR.to_string();
        return Ok(BuiltLayer { digest: digest.clone(), size, diff_id: digest, media_type });
    }
    let compressed = Hashing { inner: out, hasher: Hasher::new(Algorithm::Sha256), written: 0 };
    let (diff_id, mut compressed) = match compression {
        Compression::Gzip => {
            let encoder =
                flate2::GzBuilder::new().mtime(0).write(compressed, flate2::Compression::default());
            let (diff_id, _, encoder) = write_tar(entries, epoch, encoder).map_err(io)?;
            (diff_id, encoder.finish().map_err(io)?)
        }
        Compression::Zstd => {
            let encoder = zstd::stream::write::Encoder::new(compressed, 3).map_err(io)?;
            let (diff_id, _, encoder) = write_tar(entries, epoch, encoder).map_err(io)?;
            (diff_id, encoder.finish().map_err(io)?)
        }
    };
    compressed.flush().map_err(io)?;
    compressed.inner.get_ref().sync_all().map_err(io)?;
    Ok(BuiltLayer {
        digest: compressed.hasher.finish(),
        size: compressed.written,
        diff_id,
        media_type: compression.media_type().to_string(),
    })
}

/// The tar of `entries` written into `out`; the tar's digest and size, and `out` back.
fn write_tar<W: Write>(entries: &[Entry], epoch: u64, out: W) -> std::io::Result<(Digest, u64, W)> {
    let hashing = Hashing { inner: out, hasher: Hasher::new(Algorithm::Sha256), written: 0 };
    let mut builder = tar::Builder::new(hashing);
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(epoch);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mode(entry.mode);
        match &entry.kind {
            EntryKind::Directory => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{}/", entry.path), std::io::empty())?;
            }
            EntryKind::File(source) => {
                let file = std::fs::File::open(source)?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(file.metadata()?.len());
                builder.append_data(&mut header, &entry.path, file)?;
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, &entry.path, target)?;
            }
        }
    }
    let hashing = builder.into_inner()?;
    Ok((hashing.hasher.finish(), hashing.written, hashing.inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_patterns() {
        assert!(matches("*.yaml", "a.yaml") && !matches("*.yaml", "a.yml"));
        assert!(matches("v?", "v1") && !matches("v?", "v10"));
        assert!(matches("[a-c]x", "bx") && !matches("[!a-c]x", "bx") && matches("[!a-c]x", "dx"));
    }

    #[test]
    fn copy_places_files_as_docker_does_and_layers_are_reproducible() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path();
        for (path, text) in [
            ("charts/nginx/values.yaml", "a"),
            ("charts/nginx/Chart.yaml", "b"),
            ("run.sh", "c"),
            ("x.tmpl", "{{ .v }}"),
        ] {
            std::fs::create_dir_all(root.join(path).parent().expect("parent")).expect("dirs");
            std::fs::write(root.join(path), text).expect("write");
        }
        let same = |p: &Path| p.to_path_buf();
        let paths = |entries: Vec<Entry>| entries.into_iter().map(|e| e.path).collect::<Vec<_>>();
        let dir_copy = copy_entries(root, &["charts".into()], "charts", None, &same).expect("copy");
        assert_eq!(
            paths(dir_copy),
            vec!["charts", "charts/nginx", "charts/nginx/Chart.yaml", "charts/nginx/values.yaml"]
        );
        let file_copy = copy_entries(root, &["run.sh".into()], "/opt/app.sh", Some(0o755), &same)
            .expect("copy");
        assert_eq!(
            file_copy.iter().map(|e| (e.path.as_str(), e.mode)).collect::<Vec<_>>(),
            vec![("opt", 0o755), ("opt/app.sh", 0o755)]
        );
        let glob_copy = copy_entries(root, &["*.sh".into(), "*.tmpl".into()], "bin", None, &same)
            .expect("copy");
        assert_eq!(paths(glob_copy), vec!["bin", "bin/run.sh", "bin/x.tmpl"]);
        assert!(copy_entries(root, &["../etc".into()], ".", None, &same).is_err());
        assert!(copy_entries(root, &["missing/*".into()], ".", None, &same).is_err());

        let entries = copy_entries(root, &[".".into()], ".", None, &same).expect("copy");
        let out = tempfile::tempdir().expect("out");
        let one = write_layer(&entries, 0, Compression::Gzip, &out.path().join("one.tgz"))
            .expect("layer");
        let two = write_layer(&entries, 0, Compression::Gzip, &out.path().join("two.tgz"))
            .expect("layer");
        assert_eq!(
            (one.digest.clone(), one.diff_id.clone()),
            (two.digest, two.diff_id),
            "the same bytes twice"
        );
        let later =
            write_layer(&entries, 1_700_000_000, Compression::Zstd, &out.path().join("z.zst"))
                .expect("layer");
        assert_ne!(later.diff_id, one.diff_id, "the epoch is in the tar");
    }

    #[test]
    fn already_compressed_files_make_a_plain_layer_hashed_once() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("dir");
        let blob = dir.path().join("blob");
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&[7u8; 100_000]).expect("gzip");
        std::fs::write(&blob, gzip.finish().expect("gzip")).expect("write");
        std::fs::write(dir.path().join("note.txt"), "small").expect("write");
        let same = |p: &Path| p.to_path_buf();
        let entries = copy_entries(dir.path(), &[".".into()], ".", None, &same).expect("copy");
        let layer =
            write_layer(&entries, 0, Compression::Zstd, &dir.path().join("layer")).expect("layer");
        assert_eq!(layer.media_type, PLAIN_TAR);
        assert_eq!(layer.digest, layer.diff_id, "an uncompressed layer is its tar");
        let bytes = std::fs::read(dir.path().join("layer")).expect("read");
        assert_eq!(layer.size, bytes.len() as u64);
        assert_eq!(Digest::sha256_of(&bytes), layer.digest);

        std::fs::write(dir.path().join("note.txt"), "x".repeat(200_000)).expect("write");
        let entries =
            copy_entries(dir.path(), &["note.txt".into()], ".", None, &same).expect("copy");
        let text =
            write_layer(&entries, 0, Compression::Zstd, &dir.path().join("text")).expect("layer");
        assert_ne!(text.media_type, PLAIN_TAR, "text is compressed");
    }
}
