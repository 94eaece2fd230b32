//! `imagehub build`: a sealos cluster image from a recipe (seed 003), without a
//! container runtime. The images the recipe deploys are saved into its `registry/`,
//! the Kubefile is applied, and the result is written as an OCI layout or archive or
//! pushed to any registry.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use imagehub_build::{BuildRequest, Compression, ImageList, find_images};
use imagehub_client::{CredentialStore, Credentials, RemoteReference, Target};
use imagehub_oci::{Platform, Reference};

use super::progress::Progress;
use super::{ClientArgs, Failure, block_on, print_table};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    imagehub build . -t 127.0.0.1:5000/labring/nginx:v1.23.1 --push\n  \
    imagehub build --recipes ./cluster-image nginx 1.23.1 -t 127.0.0.1:5000/labring/nginx:v1.23.1 --push\n  \
    imagehub build applications/nginx/latest --list-images\n  \
    imagehub build . -t nginx:v1 --platform linux/amd64,linux/arm64 --output oci:./out")]
pub struct BuildArgs {
    /// The recipe folder (`.` by default); with --recipes, the APP and its VERSION.
    args: Vec<String>,
    /// A cluster-image repository: builds `applications/APP/VERSION/`, or `latest/` when
    /// that version has no folder, with the app's README as `/README.md`.
    #[arg(long, value_name = "REPO_DIR")]
    recipes: Option<PathBuf>,
    /// The image: where `--push` sends it, and its name in `--output`.
    #[arg(short = 't', long = "tag", value_name = "IMAGE")]
    image: Option<String>,
    /// The Kubefile (`Kubefile`, `Dockerfile` or `Containerfile` of the recipe by default).
    #[arg(short = 'f', long = "file")]
    kubefile: Option<PathBuf>,
    /// Platforms to build, comma-separated; one image each and an index over them.
    #[arg(long, value_delimiter = ',', default_value = "linux/amd64")]
    platform: Vec<String>,
    /// `NAME=VALUE` for the Kubefile's ARGs (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    build_args: Vec<String>,
    /// Print the images the recipe deploys and where each was found, then stop.
    #[arg(long)]
    list_images: bool,
    /// Save whole multi-platform images into registry/, not just the build's platform.
    #[arg(long)]
    all: bool,
    /// Images fetched at once.
    #[arg(long, default_value_t = 5)]
    max_pull_procs: usize,
    /// How layers are compressed.
    #[arg(long, value_enum, default_value = "gzip")]
    compression: CompressionArg,
    /// Where to write the image: `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`.
    #[arg(long)]
    output: Option<String>,
    /// Push the image to its registry (`-t`).
    #[arg(long)]
    push: bool,
    /// With --push and several platforms, also tag each platform's image IMAGE-ARCH.
    #[arg(long)]
    arch_tags: bool,
    /// Run the recipe's `init.sh ARCH NAME VERSION` first, for each platform in its own
    /// copy of the recipe (under `.imagehub/init/`), which is then built.
    #[arg(long)]
    run_init: bool,
    /// Seconds `init.sh` may run before it is stopped.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    init_timeout: u64,
    /// Print only the outcome.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CompressionArg {
    Gzip,
    Zstd,
}

/// The recipe to build: its folder, README, and the arguments it gets.
struct Recipe {
    context: PathBuf,
    readme: Option<PathBuf>,
    args: HashMap<String, String>,
    /// The app and its version, as `init.sh` is told them.
    name: String,
    version: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure { code: 2, ..Failure::new(message) }
}

fn recipe(args: &BuildArgs) -> Result<Recipe, Failure> {
    let mut build_args = HashMap::new();
    for pair in &args.build_args {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| usage(format!("--build-arg {pair}: give NAME=VALUE")))?;
        build_args.insert(name.to_string(), value.to_string());
    }
    let Some(repository) = &args.recipes else {
        let context = match args.args.as_slice() {
            [] => PathBuf::from("."),
            [dir] => PathBuf::from(dir),
            _ => return Err(usage("give one recipe folder (or --recipes REPO_DIR APP VERSION)")),
        };
        // A folder applications/APP/VERSION names its app and version.
        let absolute = std::path::absolute(&context).unwrap_or_else(|_| context.clone());
        let folder = |path: Option<&Path>| {
            path.and_then(Path::file_name).map_or(String::new(), |n| n.to_string_lossy().into())
        };
        let name = build_args.get("NAME").cloned().unwrap_or_else(|| folder(absolute.parent()));
        let version = build_args.get("VERSION").cloned().unwrap_or_else(|| folder(Some(&absolute)));
        return Ok(Recipe { context, readme: None, args: build_args, name, version });
    };
    let [app, version] = args.args.as_slice() else {
        return Err(usage(
            "--recipes REPO_DIR takes the APP and its VERSION: --recipes ./repo nginx 1.23.1",
        ));
    };
    let found = imagehub_build::locate(repository, app, version).map_err(|e| match e {
        imagehub_build::BuildError::NoRecipe { .. } => {
            Failure { code: super::NOT_FOUND, ..Failure::new(e.to_string()) }
        }
        other => usage(other.to_string()),
    })?;
    for (name, value) in [("NAME", app.as_str()), ("VERSION", version.as_str())] {
        build_args.entry(name.to_string()).or_insert_with(|| value.to_string());
    }
    Ok(Recipe {
        context: found.context,
        readme: found.readme,
        args: build_args,
        name: found.app,
        version: found.version,
    })
}

/// With --run-init: for each platform, a copy of the recipe prepared by its `init.sh`.
fn run_init(
    args: &BuildArgs,
    recipe: &Recipe,
    platforms: &[Platform],
    log: &(dyn Fn(String) + Sync),
) -> Result<Vec<PathBuf>, Failure> {
    if !args.run_init {
        return Ok(Vec::new());
    }
    let mut copies = Vec::new();
    for platform in platforms {
        let folder = format!("{}-{}", platform.os, platform.architecture);
        let copy = recipe.context.join(imagehub_build::WORK_DIR).join("init").join(folder);
        let failed = |e: imagehub_build::BuildError| Failure::new(e.to_string());
        imagehub_build::prepare_copy(&recipe.context, &copy).map_err(failed)?;
        let init = imagehub_build::InitArgs {
            arch: &platform.architecture,
            name: &recipe.name,
            version: &recipe.version,
            timeout: std::time::Duration::from_secs(args.init_timeout),
        };
        block_on(async { imagehub_build::run_init(&copy, &init, log).await.map_err(failed) })?;
        copies.push(copy);
    }
    Ok(copies)
}

fn kubefile_of(args: &BuildArgs, context: &Path) -> Result<PathBuf, Failure> {
    if let Some(file) = &args.kubefile {
        return Ok(file.clone());
    }
    imagehub_build::KUBEFILE_NAMES
        .iter()
        .map(|name| context.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            Failure::new(format!(
                "{} has no Kubefile, Dockerfile or Containerfile",
                context.display()
            ))
        })
}

fn platforms(args: &BuildArgs) -> Result<Vec<Platform>, Failure> {
    args.platform
        .iter()
        .map(|p| {
            let mut parts = p.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(os), Some(arch), variant, None) if !os.is_empty() && !arch.is_empty() => {
                    Ok(Platform {
                        os: os.into(),
                        architecture: arch.into(),
                        variant: variant.map(String::from),
                    })
                }
                _ => Err(usage(format!("--platform {p}: give OS/ARCH, such as linux/arm64"))),
            }
        })
        .collect()
}

pub fn build(args: BuildArgs) -> Result<(), Failure> {
    let recipe = recipe(&args)?;
    if args.list_images {
        return list_images(&recipe.context, args.client.json);
    }
    if args.push && args.image.is_none() {
        return Err(usage("--push needs the image: -t HOST/org/name:tag"));
    }
    let target: Option<RemoteReference> = args
        .image
        .as_deref()
        .map(|i| i.parse().map_err(|e| usage(format!("-t {i}: {e}"))))
        .transpose()?;
    let tag = target
        .as_ref()
        .and_then(|t| t.tag.as_ref())
        .map_or("latest".to_string(), ToString::to_string);
    let kubefile = kubefile_of(&args, &recipe.context)?;
    let platforms = platforms(&args)?;
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|e| e.parse().ok()).unwrap_or(0);
    let scratch =
        tempfile::tempdir().map_err(|e| Failure::new(format!("a temporary directory: {e}")))?;
    let (place, output_tag) = match &args.output {
        Some(output) => {
            let (place, name) = super::transfer::place_of(output, false)?;
            (Some(place), name)
        }
        None => (None, None),
    };
    let layout_dir =
        place.as_ref().map_or_else(|| scratch.path().join("layout"), |p| p.layout.dir.clone());
    let layout_tag = output_tag.unwrap_or_else(|| tag.clone());
    let store = CredentialStore::from_env();
    let credentials = |reference: &RemoteReference| {
        store
            .get(&reference.registry, Some(reference.repository.as_str()))
            .unwrap_or(Credentials::Anonymous)
    };
    let quiet = args.quiet;
    let log = |line: String| {
        if !quiet {
            eprintln!("{}", super::printable(&line));
        }
    };
    let platform_contexts = run_init(&args, &recipe, &platforms, &log)?;
    let mut images = ImageList::default();
    for context in platform_contexts.iter().chain([&recipe.context]) {
        images.merge(find_images(context).map_err(|e| Failure::new(e.to_string()))?);
    }
    let mut registries: Vec<String> =
        images.images.iter().map(|i| i.reference.registry.clone()).collect();
    if let Some(base) = base_registry(&kubefile, &recipe.args) {
        registries.push(base);
    }
    let registries: Vec<&str> = registries.iter().map(String::as_str).collect();
    let client = super::client_for_all(&args.client, &registries)?;
    let request = BuildRequest {
        context: recipe.context.clone(),
        platform_contexts,
        kubefile,
        args: recipe.args.clone(),
        platforms,
        epoch,
        compression: match args.compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
        },
        readme: recipe.readme.clone(),
        all: args.all,
        parallel: args.max_pull_procs,
        credentials: &credentials,
        local: None,
        output: layout_dir.clone(),
        tag: layout_tag.clone(),
        log: &log,
    };
    let mut built = None;
    block_on(async {
        built = Some(
            imagehub_build::build(&client, &request)
                .await
                .map_err(|e| Failure::new(e.to_string()))?,
        );
        Ok(())
    })?;
    let built = built.ok_or_else(|| Failure::new("the build made nothing"))?;
    if let Some(place) = &place {
        place.finish()?;
        println!(
            "Built {} into {} ({})",
            recipe.context.display(),
            args.output.as_deref().unwrap_or(""),
            built.manifest.digest
        );
    }
    if let Some(target) = target.as_ref().filter(|_| args.push) {
        push(&args, target, &tag, &layout_dir, &layout_tag, &built)?;
    } else if place.is_none() {
        println!(
            "Built {} ({}); nothing kept: give --push or --output",
            recipe.context.display(),
            built.manifest.digest
        );
    }
    Ok(())
}

fn push(
    args: &BuildArgs,
    target: &RemoteReference,
    tag: &str,
    layout_dir: &Path,
    layout_tag: &str,
    built: &imagehub_build::Built,
) -> Result<(), Failure> {
    let credentials =
        CredentialStore::from_env().get(&target.registry, Some(target.repository.as_str()))?;
    let client = super::client(&args.client, &target.registry)?;
    let bar = Progress::new(args.quiet, format!("pushing {}", target));
    let layout = super::layout::Layout::new(layout_dir);
    block_on(async {
        let to = Target::of(target, &credentials);
        super::transfer::push_layout(&layout, Some(layout_tag), &client, &to, tag, &bar).await?;
        if args.arch_tags && built.platforms.len() > 1 {
            for (platform, image) in &built.platforms {
                let arch_tag = format!("{tag}-{}", platform.architecture);
                let reference = Reference::Tag(
                    arch_tag.parse().map_err(|e| Failure::new(format!("{arch_tag}: {e}")))?,
                );
                client
                    .put_manifest(&to, &reference, image)
                    .await
                    .map_err(|e| Failure::from_client(e, &target.registry))?;
            }
        }
        Ok(())
    })?;
    bar.finish();
    println!("Pushed {}/{}:{tag} ({})", target.registry, target.repository, built.manifest.digest);
    Ok(())
}

/// The registry of the Kubefile's base image, if it has one (it may need plain HTTP).
fn base_registry(kubefile: &Path, args: &HashMap<String, String>) -> Option<String> {
    let text = std::fs::read_to_string(kubefile).ok()?;
    match imagehub_build::Kubefile::parse(kubefile, &text, args).ok()?.base {
        imagehub_build::Base::Image(image) => Some(image.parse::<RemoteReference>().ok()?.registry),
        imagehub_build::Base::Scratch => None,
    }
}

fn list_images(context: &Path, json: bool) -> Result<(), Failure> {
    let list = find_images(context).map_err(|e| Failure::new(e.to_string()))?;
    if json {
        let images: Vec<serde_json::Value> = list
            .images
            .iter()
            .map(|i| serde_json::json!({"image": i.reference.to_string(), "sources": i.sources}))
            .collect();
        println!("{}", serde_json::json!({"images": images, "warnings": list.warnings}));
        return Ok(());
    }
    let rows: Vec<Vec<String>> =
        list.images.iter().map(|i| vec![i.reference.to_string(), i.sources.join(", ")]).collect();
    print_table(&["IMAGE", "FOUND IN"], &rows, &format!("{} deploys no image.", context.display()));
    for warning in &list.warnings {
        eprintln!("warning: {}", super::printable(warning));
    }
    Ok(())
}
