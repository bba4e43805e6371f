//! The progress bar and its live one-line summary (indicatif), on stderr
//! and only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use crate::stats::Stats;

/// How the bar measures progress.
pub enum Length {
    /// Milliseconds of a planned duration.
    Time(Duration),
    /// Units of work (calls, sessions, cycles) over all clients.
    Units(u64),
}

/// A running progress display; `finish` clears it.
pub struct Progress {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
}

const EVERY: Duration = Duration::from_millis(500);

impl Progress {
    pub fn start(stats: Arc<Stats>, length: Length, label: String) -> Progress {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let (bar, template) = match length {
            Length::Time(d) => (
                ProgressBar::with_draw_target(Some(d.as_millis() as u64), target),
                "{prefix} [{bar:24}] {elapsed_precise} {msg}",
            ),
            Length::Units(n) => (
                ProgressBar::with_draw_target(Some(n), target),
                "{prefix} [{bar:24}] {pos}/{len} {msg}",
            ),
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label);
        let timed = matches!(length, Length::Time(_));
        let ticker = tokio::spawn({
            let bar = bar.clone();
            async move {
                let started = Instant::now();
                let (mut requests, mut errors) = (0, 0);
                let mut last = Instant::now();
                loop {
                    tokio::time::sleep(EVERY).await;
                    let r = stats.recent(&mut requests, &mut errors);
                    let secs = last.elapsed().as_secs_f64().max(1e-3);
                    last = Instant::now();
                    bar.set_message(format!(
                        "{:.0} req/s  p50 {:.2} ms  p99 {:.2} ms  sessions {} open, {} created  errors {}{}",
                        r.requests as f64 / secs,
                        r.latency.p50,
                        r.latency.p99,
                        r.open_sessions,
                        r.created,
                        stats.errors(),
                        if r.errors > 0 { " (rising)" } else { "" },
                    ));
                    if timed {
                        bar.set_position(started.elapsed().as_millis() as u64);
                    } else {
                        bar.set_position(stats.progress.load(std::sync::atomic::Ordering::Relaxed));
                    }
                    bar.tick();
                }
            }
        });
        Progress { bar, ticker }
    }

    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
