//! Progress of a transfer: on a terminal a bar of the bytes in total with bytes/s and
//! ETA (a spinner until the total is known); elsewhere a plain line per blob; nothing
//! with `--quiet`.

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    /// Plain lines rather than a bar (not a terminal), unless quiet.
    lines: bool,
}

impl Progress {
    pub fn new(quiet: bool, message: String) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let terminal = !bar.is_hidden();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        if quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_message(message);
        Progress { bar, lines: !quiet && !terminal }
    }

    /// The bytes to transfer in all, once known: the spinner becomes a bar with an ETA.
    pub fn set_total(&self, total: u64) {
        self.bar.set_style(
            ProgressStyle::with_template(
                "{msg:24!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        self.bar.set_length(total);
        self.bar.reset_eta();
    }

    pub fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    /// A blob is done: `what` (`uploaded`, `skipped`, …).
    pub fn blob(&self, digest: &imagehub_oci::Digest, size: u64, what: &str) {
        if self.lines {
            let short: String = digest.to_string().chars().take(19).collect();
            eprintln!("{short}  {:>10}  {what}", HumanBytes(size).to_string());
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// A handle counting bytes from another task.
    pub fn counter(&self) -> ProgressBar {
        self.bar.clone()
    }
}
