//! Background work while the server runs: upload expiry, saving pull counts, garbage
//! collection when `gc.interval_secs` is set, and indexing of pushed images.

use std::time::Duration;

use imagehub_core::{GcOptions, Registry};

use crate::config::Config;

/// How often abandoned uploads are looked for.
const UPLOAD_EXPIRY_CHECK: Duration = Duration::from_secs(300);
/// How often counted pulls are saved.
const PULL_FLUSH: Duration = Duration::from_secs(10);

/// Runs until aborted.
pub async fn run(registry: Registry, config: Config) {
    let expiry = Duration::from_secs(config.uploads.expiry_secs);
    let gc_interval = Duration::from_secs(config.gc.interval_secs);
    let gc_options = GcOptions {
        grace_period: Duration::from_secs(config.gc.grace_period_secs),
        dry_run: false,
    };
    let mut expiry_tick =
        tokio::time::interval(UPLOAD_EXPIRY_CHECK.min(expiry.max(Duration::from_secs(1))));
    // With GC off this timer is never awaited; the interval value only has to be valid.
    let mut gc_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + gc_interval,
        gc_interval.max(Duration::from_secs(1)),
    );
    let mut pull_tick = tokio::time::interval(PULL_FLUSH);
    loop {
        tokio::select! {
            _ = pull_tick.tick() => {
                if let Err(e) = registry.flush_pulls().await {
                    tracing::warn!(error = %e, "saving pull counts failed");
                }
            }
            _ = expiry_tick.tick() => {
                if let Err(e) = registry.expire_uploads(expiry).await {
                    tracing::warn!(error = %e, "upload expiry failed");
                }
                if let Err(e) = registry.prune_web_sessions().await {
                    tracing::warn!(error = %e, "pruning web sessions failed");
                }
                match registry.prune_datapacks().await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(datapacks.pruned = pruned, "forgot DataPacks unused for too long"),
                    Err(e) => tracing::warn!(error = %e, "pruning DataPacks failed"),
                }
            }
            _ = gc_tick.tick(), if !gc_interval.is_zero() => {
                if let Err(e) = registry.collect_garbage(gc_options).await {
                    tracing::warn!(error = %e, "background garbage collection failed");
                }
            }
        }
    }
}

/// How often the indexing queue is looked at without a push waking it (for retries).
const INDEX_POLL: Duration = Duration::from_secs(30);
/// Indexing starts once pushes have paused this long ...
const INDEX_QUIET: Duration = Duration::from_millis(250);
/// ... or this long after the first push it was woken for, under sustained pushing.
const INDEX_MAX_DELAY: Duration = Duration::from_secs(5);

/// Works the indexing queue: shortly after pushes pause, and every `INDEX_POLL` for
/// retries. Waiting for a pause keeps indexing (which reads layers and takes the
/// database's write lock) from competing with a burst of pushes, and lets one batch
/// take the burst's jobs. Runs until aborted.
pub async fn index_images(registry: Registry) {
    loop {
        if let Err(e) = registry.run_index_jobs().await {
            tracing::warn!(error = %e, "indexing images failed");
        }
        if registry.wait_for_index_work(INDEX_POLL).await {
            let woken = tokio::time::Instant::now();
            while woken.elapsed() < INDEX_MAX_DELAY
                && registry.wait_for_index_work(INDEX_QUIET).await
            {}
        }
    }
}
