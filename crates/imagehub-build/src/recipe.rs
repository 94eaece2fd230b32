//! Recipes as a cluster-image repository holds them (seed 003):
//! `applications/APP/VERSION/`, or `applications/APP/latest/` when that version has no
//! folder; the chat command that asks for a build; and `init.sh`, which prepares a
//! recipe (downloads charts and binaries) in a copy of it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, BufReader};

use crate::BuildError;
use crate::build::WORK_DIR;

/// The names a recipe's Kubefile may have, in the order they are looked for.
pub const KUBEFILE_NAMES: [&str; 3] = ["Kubefile", "Dockerfile", "Containerfile"];

/// A recipe found in a repository.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The folder built: `applications/APP/VERSION` or `applications/APP/latest`.
    pub context: PathBuf,
    /// `applications/APP/README.md`, when there is one.
    pub readme: Option<PathBuf>,
    pub app: String,
    pub version: String,
}

/// Whether `word` may name an app or a version: letters, digits, `.`, `_` and `-`, not
/// starting with a dot (so never `.` or `..`).
pub fn is_clean_word(word: &str) -> bool {
    !word.is_empty()
        && !word.starts_with('.')
        && word.len() <= 128
        && word.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// The recipe of `app` at `version` in the cluster-image repository `repository`.
pub fn locate(repository: &Path, app: &str, version: &str) -> Result<Recipe, BuildError> {
    if !is_clean_word(app) || !is_clean_word(version) {
        return Err(BuildError::Recipe {
            message: format!(
                "{app:?} {version:?}: an app and its version are letters, digits, '.', '_' and '-', not starting with '.'"
            ),
        });
    }
    let app_dir = repository.join("applications").join(app);
    let context = [version, "latest"]
        .iter()
        .map(|folder| app_dir.join(folder))
        .find(|dir| dir.is_dir())
        .ok_or_else(|| BuildError::NoRecipe {
            message: format!("applications/{app} has neither {version}/ nor latest/"),
        })?;
    let readme = app_dir.join("README.md");
    let readme = match std::fs::symlink_metadata(&readme) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(BuildError::Recipe {
                message: format!("applications/{app}/README.md is a link; it must be a file"),
            });
        }
        Ok(meta) if meta.is_file() => Some(readme),
        _ => None,
    };
    Ok(Recipe { context, readme, app: app.to_string(), version: version.to_string() })
}

/// A command of seed 003's chat interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/imagebuild_apps APP VERSION`.
    BuildApp { app: String, version: String },
}

/// Why a text is not a command this hub runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the text holds no command; send /imagebuild_apps APP VERSION")]
    NoCommand,
    #[error(
        "{0} is a command of the cluster-image workflow that this hub does not support yet; it builds apps with /imagebuild_apps APP VERSION"
    )]
    Unsupported(String),
    #[error("{0} is not a command; send /imagebuild_apps APP VERSION")]
    Unknown(String),
    #[error("/imagebuild_apps takes an app and its version: /imagebuild_apps nginx 1.23.1")]
    Usage,
}

/// The commands seed 003 lists that are not built yet.
const UNSUPPORTED: &[&str] = &[
    "/imagebuild_k8s",
    "/single_imagebuild_k8s_part1",
    "/single_imagebuild_k8s_part2",
    "/single_imagebuild_k8s_part3",
    "/imagebuild_configs",
    "/imagebuild_docker_k8s",
    "/imagebuild_dockerimages",
    "/imagebuild_hosted",
];

/// The command in `text` (an issue comment: its first line that starts with `/`), read
/// as the cluster-image workflow reads it: words split on blanks, and each argument
/// keeping only `[A-Za-z0-9._-]`.
pub fn parse_command(text: &str) -> Result<Command, CommandError> {
    let line = text.lines().map(str::trim).find(|l| l.starts_with('/'));
    let mut words = line.ok_or(CommandError::NoCommand)?.split_whitespace();
    let command = words.next().unwrap_or_default();
    if UNSUPPORTED.contains(&command) {
        return Err(CommandError::Unsupported(command.to_string()));
    }
    if command != "/imagebuild_apps" {
        let shown: String = command.chars().take(64).collect();
        return Err(CommandError::Unknown(shown));
    }
    let clean = |word: &str| -> String {
        word.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).collect()
    };
    match (words.next().map(clean), words.next().map(clean)) {
        (Some(app), Some(version)) if is_clean_word(&app) && is_clean_word(&version) => {
            Ok(Command::BuildApp { app, version })
        }
        _ => Err(CommandError::Usage),
    }
}

/// Copies the recipe folder `from` into `to` (created), without the builder's own
/// folder: `init.sh` then changes the copy, never the recipe. Links are copied as links.
pub fn copy_recipe(from: &Path, to: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(to).map_err(|e| BuildError::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| BuildError::io(from, e))? {
        let entry = entry.map_err(|e| BuildError::io(from, e))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_name() == WORK_DIR {
            continue;
        }
        let kind = entry.file_type().map_err(|e| BuildError::io(&source, e))?;
        if kind.is_dir() {
            copy_recipe(&source, &target)?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(&source).map_err(|e| BuildError::io(&source, e))?;
            std::os::unix::fs::symlink(link, &target).map_err(|e| BuildError::io(&target, e))?;
        } else if kind.is_file() {
            std::fs::copy(&source, &target).map_err(|e| BuildError::io(&target, e))?;
        }
    }
    Ok(())
}

/// Makes `to` a fresh copy of the recipe `from` for `init.sh` to prepare, keeping the
/// `registry/` and builder's folder an earlier build left there (images saved and layers
/// cached are not fetched or written again).
pub fn prepare_copy(from: &Path, to: &Path) -> Result<(), BuildError> {
    if let Ok(entries) = std::fs::read_dir(to) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == "registry" || name == WORK_DIR {
                continue;
            }
            let path = entry.path();
            let removed = match entry.file_type().is_ok_and(|t| t.is_dir()) {
                true => std::fs::remove_dir_all(&path),
                false => std::fs::remove_file(&path),
            };
            removed.map_err(|e| BuildError::io(&path, e))?;
        }
    }
    copy_recipe(from, to)
}

/// What `init.sh` is told, as the cluster-image workflow tells it: `bash init.sh ARCH
/// NAME VERSION`, and the same as environment variables.
pub struct InitArgs<'a> {
    pub arch: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    /// How long it may run before it is killed with everything it started.
    pub timeout: Duration,
}

/// Longest line of `init.sh`'s output passed on; the rest of a longer line is cut.
const MAX_LINE: usize = 4096;

/// Runs `dir/init.sh` (when there is one) in `dir`, passing each line it prints to `log`;
/// a failure, or running past the timeout, fails the build.
pub async fn run_init(
    dir: &Path,
    args: &InitArgs<'_>,
    log: &(dyn Fn(String) + Sync),
) -> Result<(), BuildError> {
    let script = dir.join("init.sh");
    if !script.is_file() {
        return Ok(());
    }
    log(format!("running init.sh {} {} {}", args.arch, args.name, args.version));
    let mut child = tokio::process::Command::new("bash")
        .arg("init.sh")
        .args([args.arch, args.name, args.version])
        .env("ARCH", args.arch)
        .env("NAME", args.name)
        .env("VERSION", args.version)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BuildError::io(&script, e))?;
    // Whatever way this ends (done, failed, timed out, or the build dropped because the
    // server stops), nothing init.sh started outlives it.
    let _group = child.id().map(KillGroup);
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let output = async {
        tokio::join!(pass_lines(stdout, log), pass_lines(stderr, log));
        child.wait().await
    };
    let status = match tokio::time::timeout(args.timeout, output).await {
        Ok(status) => status.map_err(|e| BuildError::io(&script, e))?,
        Err(_) => {
            return Err(BuildError::Recipe {
                message: format!(
                    "init.sh ran longer than {} s and was stopped",
                    args.timeout.as_secs()
                ),
            });
        }
    };
    match status.success() {
        true => Ok(()),
        false => Err(BuildError::Recipe { message: format!("init.sh failed ({status})") }),
    }
}

/// Kills a process group when dropped.
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0 as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    }
}

/// Passes the lines `from` gives to `log`, cutting each at [`MAX_LINE`] bytes.
async fn pass_lines(from: Option<impl AsyncRead + Unpin>, log: &(dyn Fn(String) + Sync)) {
    let Some(from) = from else { return };
    let mut reader = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Reads at most MAX_LINE + 1 bytes of a line, then skips its rest.
        let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let whole = line.ends_with(b"\n");
        if !whole && line.len() > MAX_LINE {
            skip_line(&mut reader).await;
            line.truncate(MAX_LINE);
        }
        let text = String::from_utf8_lossy(&line);
        log(text.trim_end_matches(['\n', '\r']).to_string());
    }
}

/// Skips the rest of a line without holding it: a line may be endless.
async fn skip_line(reader: &mut (impl tokio::io::AsyncBufRead + Unpin)) {
    loop {
        let (used, ended) = match reader.fill_buf().await {
            Ok([]) | Err(_) => return,
            Ok(bytes) => match bytes.iter().position(|b| *b == b'\n') {
                Some(end) => (end + 1, true),
                None => (bytes.len(), false),
            },
        };
        reader.consume(used);
        if ended {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_as_the_workflow_reads_them() {
        let build = |app: &str, version: &str| {
            Ok(Command::BuildApp { app: app.to_string(), version: version.to_string() })
        };
        assert_eq!(parse_command("/imagebuild_apps nginx 1.23.1"), build("nginx", "1.23.1"));
        assert_eq!(
            parse_command("Please build.\r\n  /imagebuild_apps   nginx  v1.23.1 \nthanks"),
            build("nginx", "v1.23.1")
        );
        assert_eq!(parse_command("/imagebuild_apps ngi$nx 1.2;rm"), build("nginx", "1.2rm"));
        assert_eq!(parse_command("/imagebuild_apps nginx"), Err(CommandError::Usage));
        assert_eq!(parse_command("/imagebuild_apps .. latest"), Err(CommandError::Usage));
        assert_eq!(parse_command("/imagebuild_apps $$ 1"), Err(CommandError::Usage));
        assert_eq!(
            parse_command("/imagebuild_hosted nginx 1"),
            Err(CommandError::Unsupported("/imagebuild_hosted".into()))
        );
        assert!(matches!(parse_command("/deploy x"), Err(CommandError::Unknown(_))));
        assert_eq!(parse_command("looks good to me"), Err(CommandError::NoCommand));
    }

    #[test]
    fn a_version_without_a_folder_falls_back_to_latest() {
        let dir = tempfile::tempdir().expect("dir");
        let app = dir.path().join("applications/nginx");
        std::fs::create_dir_all(app.join("latest")).expect("dirs");
        std::fs::create_dir_all(app.join("1.0")).expect("dirs");
        std::fs::write(app.join("README.md"), "# nginx").expect("write");
        let found = locate(dir.path(), "nginx", "1.0").expect("1.0");
        assert_eq!(found.context, app.join("1.0"));
        assert_eq!(found.readme, Some(app.join("README.md")));
        assert_eq!(locate(dir.path(), "nginx", "9.9").expect("latest").context, app.join("latest"));
        assert!(matches!(locate(dir.path(), "redis", "1"), Err(BuildError::NoRecipe { .. })));
        assert!(matches!(locate(dir.path(), "..", "1"), Err(BuildError::Recipe { .. })));
    }
}
