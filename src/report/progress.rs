//! A progress bar on stderr for long runs: requests ended, simulated time, events/s, ETA.
//!
//! Shown only when stderr is a terminal and the run has lasted half a second, so short runs,
//! pipes, CI logs and tests see nothing. Updated from the engine's progress reports (every
//! few thousand events), never from the hot loop itself.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::Progress;

/// How long a run goes before its bar appears.
const SHOW_AFTER: Duration = Duration::from_millis(500);

/// The progress display of one policy's run.
pub struct RunProgress {
    label: String,
    enabled: bool,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl RunProgress {
    /// A display for `label`'s run; `enabled` false (or stderr not a terminal) shows nothing.
    pub fn new(label: &str, enabled: bool) -> RunProgress {
        RunProgress {
            label: label.to_string(),
            enabled: enabled && std::io::stderr().is_terminal(),
            started: Instant::now(),
            bar: None,
        }
    }

    pub fn update(&mut self, p: &Progress) {
        if !self.enabled {
            return;
        }
        let elapsed = self.started.elapsed();
        if self.bar.is_none() {
            if elapsed < SHOW_AFTER {
                return;
            }
            let bar = ProgressBar::with_draw_target(
                Some(p.requests as u64),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>16} [{bar:30}] {pos}/{len} requests ended, {msg}, ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(self.label.clone());
            self.bar = Some(bar);
        }
        let bar = self.bar.as_ref().expect("just set");
        bar.set_position(p.ended as u64);
        let rate = p.events as f64 / elapsed.as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "simulated {:.0} s, {:.1} M events/s",
            p.now.as_secs(),
            rate / 1e6
        ));
    }

    /// Removes the bar (the run's result line says the rest).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
