//! Progress of a transfer: on a terminal a bar per blob in flight and one of the bytes
//! in total, each with bytes/s and ETA (the total a spinner until known); elsewhere a
//! plain line per blob; nothing with `--quiet`.

use imagehub_oci::Digest;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

const BAR: &str =
    "{msg:24!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} ETA {eta}";

pub struct Progress {
    bars: MultiProgress,
    total: ProgressBar,
    /// Bars are drawn (a terminal, and not quiet).
    drawn: bool,
    /// Plain lines rather than bars (not a terminal), unless quiet.
    lines: bool,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress {
    pub fn new(quiet: bool, message: String) -> Progress {
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let terminal = !bars.is_hidden();
        if quiet {
            bars.set_draw_target(ProgressDrawTarget::hidden());
        }
        let total = bars.add(ProgressBar::new_spinner());
        total.set_style(style("{spinner} {msg} {bytes} {bytes_per_sec}"));
        total.set_message(message);
        Progress { bars, total, drawn: terminal && !quiet, lines: !terminal && !quiet }
    }

    /// The bytes to transfer in all, once known: the spinner becomes a bar with an ETA.
    pub fn set_total(&self, total: u64) {
        self.total.set_length(total);
        self.total.reset_eta();
        self.total.set_message("total");
        self.total.set_style(style(BAR));
    }

    /// A blob of `size` bytes begins: its own bar, above the total.
    pub fn blob(&self, digest: &Digest, size: u64) -> BlobProgress {
        let short: String = digest.to_string().chars().take(19).collect();
        let bar = match self.drawn {
            true => self.bars.insert_before(&self.total, ProgressBar::new(size)),
            false => ProgressBar::hidden(),
        };
        bar.set_style(style(BAR));
        bar.set_message(short.clone());
        BlobProgress { bar, total: self.total.clone(), short, size, lines: self.lines }
    }

    pub fn finish(&self) {
        self.total.finish_and_clear();
        let _ = self.bars.clear();
    }
}

/// One blob's progress; counts into the total too.
#[derive(Clone)]
pub struct BlobProgress {
    bar: ProgressBar,
    total: ProgressBar,
    short: String,
    size: u64,
    lines: bool,
}

impl BlobProgress {
    pub fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
        self.total.inc(bytes);
    }

    /// The blob is done: `what` (`uploaded`, `already there`, …). What was not counted
    /// yet (a blob skipped whole) counts now.
    pub fn done(&self, what: &str) {
        let left = self.size.saturating_sub(self.bar.position());
        self.total.inc(left);
        self.bar.finish_and_clear();
        if self.lines {
            eprintln!("{}  {:>10}  {what}", self.short, HumanBytes(self.size).to_string());
        }
    }
}
