//! Finding the container images a recipe deploys, as `sealos build` does: lines with
//! `image:` in `manifests/`, one image per line in `images/shim/`, and the images of the
//! charts in `charts/` (from their values, without helm); `.sealignore` drops some.
//! Each image keeps the places it was found, for `--list-images` and for errors.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use imagehub_client::RemoteReference;
use serde_yaml_ng::Value;

use crate::BuildError;

/// An image the cluster image must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    pub reference: RemoteReference,
    /// Where it was named: `manifests/app.yaml:12`, `charts/nginx (values)`.
    pub sources: Vec<String>,
}

/// The images of a recipe, and what could not be resolved.
#[derive(Debug, Default)]
pub struct ImageList {
    /// Sorted by name, each once.
    pub images: Vec<FoundImage>,
    /// Lines naming an image that could not be read without rendering (templates).
    pub warnings: Vec<String>,
}

impl ImageList {
    /// Adds `other`'s images and warnings that this list does not have yet.
    pub fn merge(&mut self, other: ImageList) {
        for image in other.images {
            if !self.images.iter().any(|i| i.reference == image.reference) {
                self.images.push(image);
            }
        }
        self.images.sort_by_key(|i| i.reference.to_string());
        for warning in other.warnings {
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
    }
}

/// The most of a chart archive read (decompressed), and of any one file.
const MAX_CHART_BYTES: u64 = 64 << 20;
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Finds the images of the build context `context`.
pub fn find_images(context: &Path) -> Result<ImageList, BuildError> {
    let mut found = Finder { context: context.to_path_buf(), ..Finder::default() };
    // `images/shim` is listed through `images`; every other folder and file read is
    // checked where it is opened (`sorted_entries`, `read_text`).
    refuse_link(&context.join("images"))?;
    for file in files_under(&context.join("manifests"))? {
        if has_extension(&file, &["yaml", "yml", "tmpl"]) {
            let text = read_text(&file)?;
            found.manifest_lines(&found.relative(&file), &text)?;
        }
    }
    for file in files_under(&context.join("images/shim"))? {
        let where_ = found.relative(&file);
        for (index, line) in read_text(&file)?.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                found.add(line, format!("{where_}:{}", index + 1))?;
            }
        }
    }
    let charts = context.join("charts");
    let helm = helm_on_path();
    for entry in sorted_entries(&charts)? {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        refuse_link(&entry)?;
        let chart = if entry.is_dir() {
            Chart::from_dir(&entry)?
        } else if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
            Chart::from_archive(&entry)?
        } else {
            continue; // `<chart>.values.yaml` and other files
        };
        let stem = name.trim_end_matches(".tgz").trim_end_matches(".tar.gz");
        let overrides = charts.join(format!("{stem}.values.yaml"));
        match &helm {
            Some(helm) => {
                let rendered = helm_template(helm, stem, &entry, &overrides)?;
                found.rendered(&format!("charts/{name}"), &rendered)?;
            }
            None => found.chart(&format!("charts/{name}"), chart, &overrides)?,
        }
    }
    found.ignore(&context.join(".sealignore"))?;
    let mut list =
        ImageList { images: found.images.into_values().collect(), warnings: found.warnings };
    list.images.sort_by_key(|i| i.reference.to_string());
    Ok(list)
}

#[derive(Default)]
struct Finder {
    context: PathBuf,
    /// By normalised name.
    images: BTreeMap<String, FoundImage>,
    warnings: Vec<String>,
}

impl Finder {
    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.context).unwrap_or(path).display().to_string()
    }

    fn add(&mut self, image: &str, source: String) -> Result<(), BuildError> {
        let reference: RemoteReference = image.parse().map_err(|e| BuildError::Recipe {
            message: format!("{source}: {image:?} is not an image reference: {e}"),
        })?;
        let entry = self
            .images
            .entry(reference.to_string())
            .or_insert_with(|| FoundImage { reference, sources: Vec::new() });
        entry.sources.push(source);
        Ok(())
    }

    /// Every line that is not a comment and holds `image:` names the image after it.
    fn manifest_lines(&mut self, file: &str, text: &str) -> Result<(), BuildError> {
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') {
                continue;
            }
            let Some((_, value)) = trimmed.split_once("image:") else { continue };
            let source = format!("{file}:{}", index + 1);
            match image_value(value) {
                LineImage::Image(image) => self.add(&image, source)?,
                LineImage::Templated(value) => self.warnings.push(format!(
                    "{source}: image {value:?} is a template; it is not saved (name the image in \
                     images/shim/ if the cluster needs it)"
                )),
                LineImage::Empty => {}
            }
        }
        Ok(())
    }

    /// The images of a chart `helm template` rendered: every `image:` line.
    fn rendered(&mut self, name: &str, text: &str) -> Result<(), BuildError> {
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            let Some((_, value)) = line.split_once("image:") else { continue };
            if let LineImage::Image(image) = image_value(value) {
                self.add(&image, format!("{name} (helm template)"))?;
            }
        }
        Ok(())
    }

    fn chart(&mut self, name: &str, chart: Chart, overrides: &Path) -> Result<(), BuildError> {
        let mut values = chart.values;
        if overrides.is_file() {
            let text = read_text(overrides)?;
            let extra: Value = serde_yaml_ng::from_str(&text).map_err(|e| BuildError::Recipe {
                message: format!("{}: {e}", self.relative(overrides)),
            })?;
            merge(&mut values, extra);
        }
        let mut images = Vec::new();
        values_images(&values, chart.app_version.as_deref(), &mut images);
        for image in images {
            self.add(&image, format!("{name} (values)"))?;
        }
        for (template, text) in &chart.templates {
            for (index, line) in text.lines().enumerate() {
                let trimmed = line.trim();
                let Some((_, value)) = trimmed.split_once("image:") else { continue };
                if trimmed.starts_with('#') {
                    continue;
                }
                let source = format!("{name}/{template}:{}", index + 1);
                match image_value(value) {
                    LineImage::Image(image) => self.add(&image, source)?,
                    LineImage::Templated(value) => self.warnings.push(format!(
                        "{source}: image {value:?} needs helm to render; the chart's values gave \
                         its images instead"
                    )),
                    LineImage::Empty => {}
                }
            }
        }
        Ok(())
    }

    /// `.sealignore`: one image per line, dropped by exact match (as written, or
    /// normalised).
    fn ignore(&mut self, file: &Path) -> Result<(), BuildError> {
        if !file.is_file() {
            return Ok(());
        }
        for line in read_text(file)?.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let normalised = line.parse::<RemoteReference>().map(|r| r.to_string());
            self.images.remove(normalised.as_deref().unwrap_or(line));
        }
        Ok(())
    }
}

/// What follows `image:` on a line.
enum LineImage {
    Image(String),
    Templated(String),
    Empty,
}

fn image_value(after: &str) -> LineImage {
    let value = after.split(" #").next().unwrap_or("").trim();
    let value = value.trim_matches(|c| c == '"' || c == '\'').trim();
    if value.is_empty() || value == "|" || value == ">" {
        LineImage::Empty
    } else if value.contains("{{") || value.contains('$') {
        LineImage::Templated(value.to_string())
    } else {
        LineImage::Image(value.to_string())
    }
}

/// Images in chart values: every map holding `repository` (or a string `image`), with
/// its `registry`, `tag` (the chart's `appVersion` when empty) and `digest`.
fn values_images(value: &Value, app_version: Option<&str>, out: &mut Vec<String>) {
    match value {
        Value::Mapping(map) => {
            let text = |key: &str| {
                map.get(key).and_then(|v| match v {
                    Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
            };
            let name = text("repository").or_else(|| text("image"));
            if let Some(name) = name.filter(|n| !n.contains("{{")) {
                let mut image = match text("registry") {
                    Some(registry) => format!("{registry}/{name}"),
                    None => name,
                };
                let has_tag = image.rsplit('/').next().is_some_and(|last| last.contains(':'));
                if let Some(digest) = text("digest") {
                    image = format!("{image}@{digest}");
                } else if !has_tag
                    && !image.contains('@')
                    && let Some(tag) = text("tag").or_else(|| app_version.map(String::from))
                {
                    image = format!("{image}:{tag}");
                }
                out.push(image);
            }
            // The map's own strings were read above; look deeper.
            for child in map.values() {
                values_images(child, app_version, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| values_images(v, app_version, out)),
        _ => {}
    }
}

/// Merges `extra` into `base`, maps key by key, anything else replaced.
fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Mapping(base), Value::Mapping(extra)) => {
            for (key, value) in extra {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, extra) => *base = extra,
    }
}

/// What the image search reads of a chart.
struct Chart {
    values: Value,
    app_version: Option<String>,
    /// `templates/…` paths and their text.
    templates: Vec<(String, String)>,
}

impl Chart {
    fn from_dir(dir: &Path) -> Result<Chart, BuildError> {
        let mut files = BTreeMap::new();
        for name in ["Chart.yaml", "values.yaml"] {
            if dir.join(name).is_file() {
                files.insert(name.to_string(), read_text(&dir.join(name))?);
            }
        }
        for file in files_under(&dir.join("templates"))? {
            let relative = file.strip_prefix(dir).unwrap_or(&file).display().to_string();
            files.insert(relative, read_text(&file)?);
        }
        Chart::from_files(&dir.display().to_string(), files)
    }

    /// A packaged chart: `NAME/Chart.yaml`, `NAME/values.yaml`, `NAME/templates/…`.
    fn from_archive(path: &Path) -> Result<Chart, BuildError> {
        let io = |e: std::io::Error| BuildError::io(path, e);
        let file = std::fs::File::open(path).map_err(io)?;
        let unzipped = flate2::read::GzDecoder::new(file).take(MAX_CHART_BYTES);
        let mut archive = tar::Archive::new(unzipped);
        let mut files = BTreeMap::new();
        for entry in archive.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let name = entry.path().map_err(io)?.display().to_string();
            // The chart's own files, not its subcharts' (`NAME/charts/…`).
            let Some((_, inner)) = name.split_once('/') else { continue };
            let wanted = inner == "Chart.yaml"
                || inner == "values.yaml"
                || (inner.starts_with("templates/") && !inner.ends_with('/'));
            if !wanted || !entry.header().entry_type().is_file() {
                continue;
            }
            let mut text = String::new();
            (&mut entry).take(MAX_FILE_BYTES).read_to_string(&mut text).map_err(io)?;
            files.insert(inner.to_string(), text);
        }
        Chart::from_files(&path.display().to_string(), files)
    }

    fn from_files(what: &str, mut files: BTreeMap<String, String>) -> Result<Chart, BuildError> {
        let yaml = |name: &str, text: &str| -> Result<Value, BuildError> {
            serde_yaml_ng::from_str(text)
                .map_err(|e| BuildError::Recipe { message: format!("{what}/{name}: {e}") })
        };
        let chart = match files.remove("Chart.yaml") {
            Some(text) => yaml("Chart.yaml", &text)?,
            None => {
                return Err(BuildError::Recipe { message: format!("{what}: no Chart.yaml") });
            }
        };
        let values = match files.remove("values.yaml") {
            Some(text) => yaml("values.yaml", &text)?,
            None => Value::Null,
        };
        let app_version = chart.get("appVersion").and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        Ok(Chart { values, app_version, templates: files.into_iter().collect() })
    }
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e))
}

/// How long `helm template` may run on one chart.
const HELM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// An executable `helm` on the PATH, if there is one.
fn helm_on_path() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join("helm")).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// `helm template NAME CHART [--values OVERRIDES]`: what it printed, at most
/// [`MAX_CHART_BYTES`], within [`HELM_TIMEOUT`] (it is killed beyond either).
fn helm_template(
    helm: &Path,
    name: &str,
    chart: &Path,
    overrides: &Path,
) -> Result<String, BuildError> {
    use std::process::Stdio;
    let io = |e: std::io::Error| BuildError::io(chart, e);
    let mut command = std::process::Command::new(helm);
    command.arg("template").arg(name).arg(chart);
    if std::fs::symlink_metadata(overrides).is_ok() {
        refuse_link(overrides)?;
        command.arg("--values").arg(overrides);
    }
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(io)?;
    // A watchdog kills helm at the timeout; told when helm is done.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(HELM_TIMEOUT) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    let stderr = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.take(64 << 10).read_to_string(&mut text);
            text
        })
    });
    let mut rendered = Vec::new();
    if let Some(out) = child.stdout.take() {
        out.take(MAX_CHART_BYTES + 1).read_to_end(&mut rendered).map_err(io)?;
    }
    let too_much = rendered.len() as u64 > MAX_CHART_BYTES;
    if too_much {
        let _ = child.kill();
    }
    let status = child.wait().map_err(io)?;
    let _ = done.send(());
    let _ = watchdog.join();
    let errors = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let shown = chart.file_name().unwrap_or_default().to_string_lossy();
    let failed = |why: String| BuildError::Recipe {
        message: format!("charts/{shown}: helm template {why}"),
    };
    if too_much {
        return Err(failed(format!("printed more than {} MiB", MAX_CHART_BYTES >> 20)));
    }
    if !status.success() {
        let first: Vec<&str> = errors.lines().take(5).collect();
        return Err(failed(format!("failed ({status}): {}", first.join(" / "))));
    }
    Ok(String::from_utf8_lossy(&rendered).into_owned())
}

/// Refuses a link: the builder reads only the files and folders a recipe holds, never
/// what a link points at (on a hub, a recipe from a pull request could otherwise point
/// at the server's own files).
fn refuse_link(path: &Path) -> Result<(), BuildError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(BuildError::Recipe {
            message: format!(
                "{} is a link; the builder reads only files and folders the recipe holds",
                path.display()
            ),
        }),
        _ => Ok(()),
    }
}

/// The entries of `dir` (none if it does not exist), sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    refuse_link(dir)?;
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BuildError::io(dir, e)),
    };
    let mut entries: Vec<PathBuf> = read
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| BuildError::io(dir, e))?;
    entries.sort();
    Ok(entries)
}

/// Every file under `dir`, recursively, sorted; links are not followed.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut files = Vec::new();
    for entry in sorted_entries(dir)? {
        let kind = std::fs::symlink_metadata(&entry).map_err(|e| BuildError::io(&entry, e))?;
        if kind.is_dir() {
            files.extend(files_under(&entry)?);
        } else if kind.is_file() {
            files.push(entry);
        }
    }
    Ok(files)
}

fn read_text(path: &Path) -> Result<String, BuildError> {
    refuse_link(path)?;
    let file = std::fs::File::open(path).map_err(|e| BuildError::io(path, e))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(|e| BuildError::io(path, e))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(BuildError::Recipe {
            message: format!("{}: larger than {} MiB", path.display(), MAX_FILE_BYTES >> 20),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, text).expect("write");
    }

    fn names(list: &ImageList) -> Vec<String> {
        list.images.iter().map(|i| i.reference.to_string()).collect()
    }

    #[test]
    fn manifests_shim_and_charts_give_their_images_once_each() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path();
        write(
            root,
            "manifests/deploy.yaml",
            "spec:\n  containers:\n  - name: a\n    image: \"nginx:1.23.1\"  # the web\n\
             # image: commented/out:1\n    imagePullPolicy: IfNotPresent\n",
        );
        write(
            root,
            "manifests/nested/job.tmpl",
            "image: {{ .registry }}/job:1\nimage: busybox:1.36\n",
        );
        write(root, "manifests/readme.md", "image: not/read:1\n");
        write(root, "images/shim/extra", "# tools\n\nghcr.io/owner/tool:v2\nnginx:1.23.1\n");
        write(root, "charts/web/Chart.yaml", "name: web\nversion: 0.1.0\nappVersion: 2.5.0\n");
        write(
            root,
            "charts/web/values.yaml",
            "image:\n  registry: quay.io\n  repository: team/web\n  tag: \"\"\n\
             sidecar:\n  image: docker.io/library/redis:7\nlist:\n- repository: team/worker\n  tag: v1\n",
        );
        write(root, "charts/web.values.yaml", "sidecar:\n  image: redis:7.2\n");
        write(
            root,
            "charts/web/templates/deploy.yaml",
            "image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\nimage: alpine:3.19\n",
        );
        write(root, ".sealignore", "busybox:1.36\n");

        let list = find_images(root).expect("found");
        assert_eq!(
            names(&list),
            vec![
                "docker.io/library/alpine:3.19",
                "docker.io/library/nginx:1.23.1",
                "docker.io/library/redis:7.2",
                "docker.io/team/worker:v1",
                "ghcr.io/owner/tool:v2",
                "quay.io/team/web:2.5.0",
            ]
        );
        let nginx = &list.images[1];
        assert_eq!(nginx.sources, vec!["manifests/deploy.yaml:4", "images/shim/extra:4"]);
        assert_eq!(list.warnings.len(), 2, "{:?}", list.warnings);
        assert!(list.warnings[0].starts_with("manifests/nested/job.tmpl:1"), "{:?}", list.warnings);
    }

    #[test]
    fn a_packaged_chart_is_read_too() {
        let dir = tempfile::tempdir().expect("dir");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, text) in [
            ("db/Chart.yaml", "name: db\nappVersion: \"16.1\"\n"),
            ("db/values.yaml", "image:\n  repository: postgres\n"),
            ("db/charts/sub/values.yaml", "image:\n  repository: not/this\n"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, text.as_bytes()).expect("append");
        }
        let bytes = builder.into_inner().expect("tar").finish().expect("gzip");
        std::fs::create_dir_all(dir.path().join("charts")).expect("dir");
        std::fs::write(dir.path().join("charts/db-1.0.0.tgz"), bytes).expect("write");
        let list = find_images(dir.path()).expect("found");
        assert_eq!(names(&list), vec!["docker.io/library/postgres:16.1"]);
        assert_eq!(list.images[0].sources, vec!["charts/db-1.0.0.tgz (values)"]);
    }

    #[test]
    fn a_bad_reference_names_its_file_and_line() {
        let dir = tempfile::tempdir().expect("dir");
        write(dir.path(), "images/shim/list", "good:1\nBad/Upper:1\n");
        let refused = find_images(dir.path()).expect_err("upper case");
        assert!(
            refused.to_string().starts_with("images/shim/list:2: \"Bad/Upper:1\""),
            "{refused}"
        );
    }

    /// A packaged chart that inflates to 256 MiB is read no further than its 64 MiB bound.
    #[test]
    fn a_chart_bomb_is_read_only_up_to_its_bound() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("dir");
        let archive = std::fs::File::create(dir.path().join("charts.tgz")).expect("file");
        let gzip = flate2::write::GzEncoder::new(archive, flate2::Compression::best());
        let mut tar = tar::Builder::new(gzip);
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        for (name, size) in [("bomb/Chart.yaml", 0u64), ("bomb/templates/x.yaml", 1 << 28)] {
            header.set_size(size);
            header.set_cksum();
            tar.append_data(&mut header, name, std::io::repeat(b' ').take(size)).expect("entry");
        }
        tar.into_inner().expect("tar").finish().expect("gzip").flush().expect("flush");
        std::fs::create_dir_all(dir.path().join("charts")).expect("charts");
        std::fs::rename(dir.path().join("charts.tgz"), dir.path().join("charts/bomb.tgz"))
            .expect("move");
        let read = find_images(dir.path());
        let message = read.expect_err("a truncated archive").to_string();
        assert!(message.contains("charts/bomb.tgz"), "{message}");
    }
}
