//! `imagehub copy SRC DST`: an image from one registry to another (or within one), all
//! platforms, every digest kept; blobs the target has are skipped and blobs of the same
//! registry mounted. Bars per blob and in total on a terminal, a line per blob
//! otherwise.

use imagehub_client::{
    BlobCopy, CopyProgress, CredentialStore, RemoteReference, Target, copy_image,
};
use imagehub_oci::Descriptor;
use serde_json::json;

use super::progress::{BlobProgress, Progress};
use super::{ClientArgs, Failure, block_on, client};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  imagehub copy nginx:1.27 127.0.0.1:5000/acme/nginx:1.27\n  \
                        imagehub copy 127.0.0.1:5000/acme/app:v1 127.0.0.1:5000/team/app:v1   # blobs mounted")]
pub struct CopyArgs {
    /// The image to copy, as docker names it.
    source: String,
    /// Where to: `HOST/repo[:tag]` (the source's tag by default).
    destination: String,
    /// Print only the outcome.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn copy(args: CopyArgs) -> Result<(), Failure> {
    let usage =
        |e: imagehub_client::ReferenceError| Failure { code: 2, ..Failure::new(e.to_string()) };
    let source: RemoteReference = args.source.parse().map_err(usage)?;
    let destination: RemoteReference = args.destination.parse().map_err(usage)?;
    let store = CredentialStore::from_env();
    let source_credentials = store.get(&source.registry, Some(source.repository.as_str()))?;
    let destination_credentials =
        store.get(&destination.registry, Some(destination.repository.as_str()))?;
    let from = client(&args.client, &source.registry)?;
    let to = client(&args.client, &destination.registry)?;
    // A tag given to the destination wins; without one, the source's.
    let tag = destination
        .tag
        .clone()
        .filter(|_| args.destination.rsplit('/').next().is_some_and(|l| l.contains(':')));
    let tag = tag.or(source.tag.clone()).map(|t| t.to_string());

    let bar = Progress::new(args.quiet, format!("copying {source}"));
    let progress = CopyBars { progress: &bar, blobs: std::sync::Mutex::new(Vec::new()) };
    let mut outcome = None;
    block_on(async {
        let from_target = Target::of(&source, &source_credentials);
        let to_target = Target::of(&destination, &destination_credentials);
        let report = copy_image(
            &from,
            &from_target,
            &source.reference(),
            &to,
            &to_target,
            tag.as_deref(),
            &progress,
        )
        .await
        .map_err(|e| {
            let registry = if e.to_string().contains(&destination.registry) {
                &destination.registry
            } else {
                &source.registry
            };
            Failure::from_client(e, registry)
        })?;
        outcome = Some(report);
        Ok(())
    })?;
    bar.finish();
    let report = outcome.unwrap_or_default();
    let digest = report.digest.as_ref().map(ToString::to_string).unwrap_or_default();
    if args.client.json {
        println!(
            "{}",
            json!({"digest": digest, "manifests": report.manifests, "uploaded": report.uploaded,
                   "mounted": report.mounted, "skipped": report.skipped, "bytes_uploaded": report.bytes_uploaded})
        );
    } else {
        println!(
            "Copied {source} to {}/{}{} ({digest}): {} blobs uploaded, {} mounted, {} already there",
            destination.registry,
            destination.repository,
            tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default(),
            report.uploaded,
            report.mounted,
            report.skipped
        );
    }
    Ok(())
}

/// The bars of a copy: the blob in flight has one.
struct CopyBars<'a> {
    progress: &'a Progress,
    blobs: std::sync::Mutex<Vec<(imagehub_oci::Digest, BlobProgress)>>,
}

impl CopyBars<'_> {
    fn bar(&self, blob: &Descriptor) -> Option<BlobProgress> {
        let blobs = self.blobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        blobs.iter().find(|(digest, _)| *digest == blob.digest).map(|(_, bar)| bar.clone())
    }
}

impl CopyProgress for CopyBars<'_> {
    fn planned(&self, bytes: u64) {
        self.progress.set_total(bytes);
    }

    fn started(&self, blob: &Descriptor) {
        let bar = self.progress.blob(&blob.digest, blob.size);
        let mut blobs = self.blobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        blobs.push((blob.digest.clone(), bar));
    }

    fn bytes(&self, blob: &Descriptor, bytes: u64) {
        if let Some(bar) = self.bar(blob) {
            bar.inc(bytes);
        }
    }

    fn done(&self, blob: &Descriptor, how: BlobCopy) {
        let what = match how {
            BlobCopy::Uploaded => "copied",
            BlobCopy::Mounted => "mounted",
            BlobCopy::Skipped => "already there",
        };
        let mut blobs = self.blobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = blobs.iter().position(|(digest, _)| *digest == blob.digest) {
            blobs.swap_remove(at).1.done(what);
        }
    }
}
