//! How one upstream is doing: crashes in a row and the backoff they earn,
//! the last error, and the figures monitoring reports (requests, errors,
//! latency percentiles, restarts).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sessiongate_core::upstream::UpstreamStatus;
use sessiongate_core::Timestamp;

/// The upstream's state, shared by every request to it.
pub(crate) struct Health {
    backoff: Duration,
    max_backoff: Duration,
    state: Mutex<State>,
    latency_us: Mutex<Histogram<u64>>,
    pub(crate) requests: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) restarts: AtomicU64,
}

struct State {
    /// Upstream sessions lost (or never started) since the last success.
    failures: u32,
    /// No new upstream session is started before this (real time: a crash
    /// loop happens in real time, whatever the lifecycle's clock says).
    retry_at: Option<Instant>,
    last_error: Option<(String, Timestamp)>,
    /// Whether it has answered since it last failed.
    answering: bool,
    /// Whether it ever answered: one that never did is down at its first
    /// failure.
    ever_answered: bool,
    /// Whether it was reported down since it last answered.
    down: bool,
}

/// Why no upstream session may be started now.
pub(crate) struct BackingOff {
    pub failures: u32,
    pub wait: Duration,
    pub last_error: String,
}

impl Health {
    pub(crate) fn new(backoff: Duration, max_backoff: Duration) -> Self {
        Health {
            backoff,
            max_backoff,
            state: Mutex::new(State {
                failures: 0,
                retry_at: None,
                last_error: None,
                answering: false,
                ever_answered: false,
                down: false,
            }),
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err` while backing off after crashes in a row.
    pub(crate) fn may_start(&self) -> Result<(), BackingOff> {
        let state = self.state();
        match state.retry_at {
            Some(at) if at > Instant::now() => Err(BackingOff {
                failures: state.failures,
                wait: at - Instant::now(),
                last_error: state
                    .last_error
                    .as_ref()
                    .map_or_else(String::new, |(e, _)| e.clone()),
            }),
            _ => Ok(()),
        }
    }

    /// An upstream session could not be started, or was lost before it
    /// answered anything. The first failure after a success is healed at
    /// once; each further one in a row waits twice as long as the one
    /// before, from `backoff` up to `max_backoff`. Returns whether the
    /// upstream went down with it: two in a row, or the first failure of
    /// one that never answered.
    pub(crate) fn failed(&self, error: String, at: Timestamp) -> bool {
        let mut state = self.state();
        state.failures = state.failures.saturating_add(1);
        state.answering = false;
        state.last_error = Some((error, at));
        if state.failures >= 2 {
            let doublings = (state.failures - 2).min(20);
            let wait = self
                .backoff
                .saturating_mul(1 << doublings)
                .min(self.max_backoff);
            state.retry_at = Some(Instant::now() + wait);
        }
        let down = state.failures >= 2 || !state.ever_answered;
        let went_down = down && !state.down;
        state.down |= down;
        went_down
    }

    /// An upstream session that had answered was lost (a child killed, an
    /// upstream restarted): healed at once, whatever came before, as it is
    /// no sign of a crash loop. Counts as one failure until the next answer.
    pub(crate) fn lost_healthy(&self, error: String, at: Timestamp) {
        let mut state = self.state();
        state.failures = state.failures.max(1);
        state.answering = false;
        state.last_error = Some((error, at));
    }

    /// It answered. Returns whether it was not answering before.
    pub(crate) fn answered(&self) -> bool {
        let mut state = self.state();
        state.failures = 0;
        state.retry_at = None;
        state.ever_answered = true;
        state.down = false;
        !std::mem::replace(&mut state.answering, true)
    }

    pub(crate) fn record(&self, took: Duration, failed: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut latency = self.latency_us.lock().unwrap_or_else(|e| e.into_inner());
        latency.saturating_record(us);
    }

    pub(crate) fn status(&self) -> UpstreamStatus {
        let state = self.state();
        match (state.failures, state.answering) {
            (0, true) => UpstreamStatus::Up,
            (0, false) if state.last_error.is_none() => UpstreamStatus::Up,
            (_, _) if !state.ever_answered => UpstreamStatus::Down,
            (1, _) => UpstreamStatus::Degraded,
            _ => UpstreamStatus::Down,
        }
    }

    pub(crate) fn last_error(&self) -> Option<(String, Timestamp)> {
        self.state().last_error.clone()
    }

    /// p50 and p99 in milliseconds, once a request was relayed.
    pub(crate) fn percentiles(&self) -> (Option<f64>, Option<f64>) {
        let latency = self.latency_us.lock().unwrap_or_else(|e| e.into_inner());
        if latency.is_empty() {
            return (None, None);
        }
        let ms = |q: f64| Some(latency.value_at_quantile(q) as f64 / 1000.0);
        (ms(0.5), ms(0.99))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Timestamp = Timestamp::from_millis(0);

    #[test]
    fn crashes_in_a_row_back_off_and_an_answer_ends_it() {
        let health = Health::new(Duration::from_secs(60), Duration::from_secs(600));
        assert_eq!(health.status(), UpstreamStatus::Up);
        assert!(health.answered(), "it answers");
        assert!(!health.failed("first".into(), AT), "one crash: not down");
        assert!(health.may_start().is_ok(), "the first is healed at once");
        assert_eq!(health.status(), UpstreamStatus::Degraded);
        assert!(health.failed("second".into(), AT), "down with the second");
        assert!(!health.failed("third".into(), AT), "down once, not again");
        let backing_off = health.may_start().expect_err("backing off");
        assert_eq!(backing_off.failures, 3);
        assert!(backing_off.wait <= Duration::from_secs(120) && backing_off.wait > Duration::ZERO);
        assert_eq!(backing_off.last_error, "third");
        assert_eq!(health.status(), UpstreamStatus::Down);
        assert!(health.answered(), "answering again");
        assert!(health.may_start().is_ok());
        assert_eq!(health.status(), UpstreamStatus::Up);
        assert!(!health.answered(), "already answering");
    }

    #[test]
    fn one_that_never_answered_is_down_at_its_first_failure() {
        let health = Health::new(Duration::from_secs(60), Duration::from_secs(600));
        assert!(health.failed("cannot start".into(), AT));
        assert_eq!(health.status(), UpstreamStatus::Down);
        assert!(health.may_start().is_ok(), "but tried again at once");
    }

    #[test]
    fn the_wait_doubles_up_to_the_most() {
        let health = Health::new(Duration::from_secs(1), Duration::from_secs(3));
        for _ in 0..4 {
            health.failed("again".into(), AT);
        }
        let wait = health.may_start().unwrap_err().wait;
        assert!(
            wait > Duration::from_secs(2) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
    }

    #[test]
    fn a_healthy_session_lost_does_not_back_off() {
        let health = Health::new(Duration::from_secs(60), Duration::from_secs(600));
        health.answered();
        for _ in 0..5 {
            health.lost_healthy("killed".into(), AT);
        }
        assert!(health.may_start().is_ok());
        assert_eq!(health.status(), UpstreamStatus::Degraded);
        assert_eq!(health.last_error().unwrap().0, "killed");
    }
}
