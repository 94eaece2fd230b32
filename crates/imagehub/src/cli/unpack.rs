//! Unpacking an image archive (`oci-archive:`, `docker-archive:`) before a push. An
//! archive is somebody else's file: a link in it could otherwise make a layer of
//! `~/.ssh/id_ed25519`, which the push would then upload, or lead a later entry out
//! of the directory. So only regular files and directories are written (each inside
//! the directory, which the tar crate checks); a link (skopeo and older docker write
//! `ID/layer.tar -> ../DIGEST.tar`) becomes a hard link to the regular file it names
//! inside the archive, found by its name alone, never by following anything on disk.

use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use super::Failure;

/// A link of the archive, made once the files are there.
struct Link {
    name: PathBuf,
    /// What it names, relative to the archive's root.
    target: PathBuf,
}

/// Unpacks the tar at `archive` into `dir`: files, directories, and links to files of
/// the archive. Anything else (devices, links leading out) is refused.
pub fn unpack(archive: &Path, dir: &Path) -> Result<(), Failure> {
    let fail = |what: String| Failure::new(format!("{}: {what}", archive.display()));
    let file = std::fs::File::open(archive).map_err(|e| fail(e.to_string()))?;
    let mut tar = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut links = Vec::new();
    for entry in tar.entries().map_err(|e| fail(e.to_string()))? {
        let mut entry = entry.map_err(|e| fail(e.to_string()))?;
        let name = entry.path().map_err(|e| fail(e.to_string()))?.into_owned();
        let shown = name.display().to_string();
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Regular | EntryType::Directory => {}
            // Archive-wide metadata (`git archive` writes one); nothing to unpack.
            EntryType::XGlobalHeader => continue,
            EntryType::Symlink | EntryType::Link => {
                let to = entry.link_name().map_err(|e| fail(e.to_string()))?.unwrap_or_default();
                // A symbolic link is relative to its own directory, a hard link to the root.
                let base = match kind {
                    EntryType::Symlink => name.parent().unwrap_or(Path::new("")),
                    _ => Path::new(""),
                };
                let target = inside(&base.join(&to)).ok_or_else(|| {
                    fail(format!("{shown:?} links to {:?}, outside the archive", to.display()))
                })?;
                let name = inside(&name)
                    .ok_or_else(|| fail(format!("{shown:?} points outside the archive")))?;
                links.push(Link { name, target });
                continue;
            }
            other => {
                return Err(fail(format!(
                    "{shown:?} is a {other:?} entry; an image archive holds only files, directories and links between them"
                )));
            }
        }
        // `unpack_in` refuses names leading outside `dir` (`..`, absolute paths).
        let unpacked = entry.unpack_in(dir).map_err(|e| fail(format!("{shown:?}: {e}")))?;
        if !unpacked {
            return Err(fail(format!("{shown:?} points outside the archive")));
        }
    }
    make_links(dir, links).map_err(fail)
}

/// Makes each link a hard link to the regular file it names; links to links are made
/// once their target is.
fn make_links(dir: &Path, mut links: Vec<Link>) -> Result<(), String> {
    while !links.is_empty() {
        let before = links.len();
        let mut waiting = Vec::new();
        for link in links {
            let target = dir.join(&link.target);
            // `symlink_metadata`: nothing on disk is followed (and none was made).
            match std::fs::symlink_metadata(&target) {
                Ok(meta) if meta.is_file() => {
                    let name = dir.join(&link.name);
                    if let Some(parent) = name.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                    }
                    std::fs::hard_link(&target, &name)
                        .map_err(|e| format!("{:?}: {e}", link.name.display()))?;
                }
                _ => waiting.push(link),
            }
        }
        if waiting.len() == before {
            let link = &waiting[0];
            return Err(format!(
                "{:?} links to {:?}, which is not a file of the archive",
                link.name.display(),
                link.target.display()
            ));
        }
        links = waiting;
    }
    Ok(())
}

/// `path` with `.` and `..` worked out by name, if it stays inside the root.
fn inside(path: &Path) -> Option<PathBuf> {
    let mut kept = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => kept.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !kept.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(kept).filter(|p| !p.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_worked_out_inside_the_root_or_refused() {
        let ok = |p: &str| inside(Path::new(p)).map(|p| p.display().to_string());
        assert_eq!(ok("id/../sha.tar").as_deref(), Some("sha.tar"));
        assert_eq!(ok("./a/./b").as_deref(), Some("a/b"));
        assert_eq!(ok("../x"), None);
        assert_eq!(ok("a/../../x"), None);
        assert_eq!(ok("/etc/passwd"), None);
        assert_eq!(ok("."), None);
    }
}
