//! What reading one image may cost: decompressed bytes and tar entries per layer and per
//! image, a deadline, and a cancellation flag for shutdown. A few megabytes of zstd can
//! expand to terabytes, and a manifest may list the same layer a thousand times; the
//! budget stops such work early, and each layer is searched at most once per image.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The bounds of a [`Budget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Decompressed bytes read from one layer.
    pub layer_bytes: u64,
    /// Tar entries read from one layer.
    pub layer_entries: u64,
    /// Decompressed bytes read from all the layers of one image (or index).
    pub image_bytes: u64,
    /// Tar entries read from all the layers of one image (or index).
    pub image_entries: u64,
    /// Time from the budget's creation.
    pub time: Duration,
}

impl Default for Limits {
    /// Generous for real images, whose README sits in the top layers: a search that
    /// reads whole layers (an image without a README) stops after 4 GiB of one layer
    /// or 8 GiB of all, or after a minute.
    fn default() -> Self {
        Limits {
            layer_bytes: 4 << 30,
            layer_entries: 1_000_000,
            image_bytes: 8 << 30,
            image_entries: 2_000_000,
            time: Duration::from_secs(60),
        }
    }
}

/// Which limit stopped the work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("more than {0} decompressed bytes in one layer")]
    LayerBytes(u64),
    #[error("more than {0} entries in one layer")]
    LayerEntries(u64),
    #[error("more than {0} decompressed bytes in the image's layers")]
    ImageBytes(u64),
    #[error("more than {0} entries in the image's layers")]
    ImageEntries(u64),
    #[error("reading the layers took longer than {} s", .0.as_secs())]
    Time(Duration),
    #[error("the server is shutting down")]
    Cancelled,
}

/// The running account of one image's reading; shared by the searches of an index's
/// platforms.
pub struct Budget {
    limits: Limits,
    started: Instant,
    bytes: AtomicU64,
    entries: AtomicU64,
    cancel: Arc<AtomicBool>,
    /// Layers searched without an answer: searching one again cannot find more.
    searched: Mutex<HashSet<String>>,
}

impl Budget {
    /// A budget starting now; setting `cancel` stops the reading at the next check.
    pub fn new(limits: Limits, cancel: Arc<AtomicBool>) -> Budget {
        Budget {
            limits,
            started: Instant::now(),
            bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            cancel,
            searched: Mutex::new(HashSet::new()),
        }
    }

    /// Fails once the deadline has passed or shutdown was asked for.
    pub fn check_time(&self) -> Result<(), LimitExceeded> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(LimitExceeded::Cancelled);
        }
        if self.started.elapsed() >= self.limits.time {
            return Err(LimitExceeded::Time(self.limits.time));
        }
        Ok(())
    }

    /// Counts one tar entry of a layer that has now read `in_layer` entries.
    pub(crate) fn count_entry(&self, in_layer: u64) -> Result<(), LimitExceeded> {
        if in_layer > self.limits.layer_entries {
            return Err(LimitExceeded::LayerEntries(self.limits.layer_entries));
        }
        if self.entries.fetch_add(1, Ordering::Relaxed) + 1 > self.limits.image_entries {
            return Err(LimitExceeded::ImageEntries(self.limits.image_entries));
        }
        Ok(())
    }

    fn count_bytes(&self, n: u64, in_layer: u64) -> Result<(), LimitExceeded> {
        if in_layer > self.limits.layer_bytes {
            return Err(LimitExceeded::LayerBytes(self.limits.layer_bytes));
        }
        if self.bytes.fetch_add(n, Ordering::Relaxed) + n > self.limits.image_bytes {
            return Err(LimitExceeded::ImageBytes(self.limits.image_bytes));
        }
        self.check_time()
    }

    pub(crate) fn already_searched(&self, layer: &str) -> bool {
        self.searched.lock().unwrap_or_else(|e| e.into_inner()).contains(layer)
    }

    pub(crate) fn mark_searched(&self, layer: &str) {
        self.searched.lock().unwrap_or_else(|e| e.into_inner()).insert(layer.to_string());
    }

    /// Decompressed bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// A layer's decompressed stream, counted against the budget: a read past a limit fails
/// with the [`LimitExceeded`] inside the `io::Error`.
pub(crate) struct Metered<'a, R> {
    inner: R,
    budget: &'a Budget,
    layer_bytes: u64,
}

impl<'a, R: Read> Metered<'a, R> {
    pub(crate) fn new(inner: R, budget: &'a Budget) -> Metered<'a, R> {
        Metered { inner, budget, layer_bytes: 0 }
    }
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.layer_bytes += n as u64;
        self.budget.count_bytes(n as u64, self.layer_bytes).map_err(io::Error::other)?;
        Ok(n)
    }
}

/// The limit behind an `io::Error` from a [`Metered`] reader, if that is what it is.
pub(crate) fn limit_of(error: &io::Error) -> Option<LimitExceeded> {
    error.get_ref().and_then(|inner| inner.downcast_ref::<LimitExceeded>()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limits: Limits) -> Budget {
        Budget::new(limits, Arc::new(AtomicBool::new(false)))
    }

    const SMALL: Limits = Limits {
        layer_bytes: 100,
        layer_entries: 3,
        image_bytes: 150,
        image_entries: 5,
        time: Duration::from_secs(3600),
    };

    fn read_all(budget: &Budget, len: usize) -> Result<u64, LimitExceeded> {
        let mut metered = Metered::new(io::repeat(b'x').take(len as u64), budget);
        io::copy(&mut metered, &mut io::sink()).map_err(|e| limit_of(&e).expect("a limit"))
    }

    #[test]
    fn bytes_are_bounded_per_layer_and_per_image() {
        let b = budget(SMALL);
        assert_eq!(read_all(&b, 100), Ok(100));
        assert_eq!(read_all(&b, 101), Err(LimitExceeded::LayerBytes(100)));
        let b = budget(SMALL);
        assert_eq!(read_all(&b, 90), Ok(90));
        assert_eq!(read_all(&b, 90), Err(LimitExceeded::ImageBytes(150)));
    }

    #[test]
    fn entries_are_bounded_per_layer_and_per_image() {
        let b = budget(SMALL);
        assert!((1..=3).all(|i| b.count_entry(i).is_ok()));
        assert_eq!(b.count_entry(4), Err(LimitExceeded::LayerEntries(3)));
        assert!(
            b.count_entry(1).is_ok() && b.count_entry(2).is_ok(),
            "the refused entry did not count"
        );
        assert_eq!(b.count_entry(3), Err(LimitExceeded::ImageEntries(5)));
    }

    #[test]
    fn cancellation_and_the_deadline_stop_reading() {
        let cancel = Arc::new(AtomicBool::new(false));
        let b = Budget::new(Limits::default(), cancel.clone());
        assert!(b.check_time().is_ok());
        cancel.store(true, Ordering::Relaxed);
        assert_eq!(read_all(&b, 10), Err(LimitExceeded::Cancelled));
        let b = budget(Limits { time: Duration::ZERO, ..Limits::default() });
        assert_eq!(b.check_time(), Err(LimitExceeded::Time(Duration::ZERO)));
    }
}
