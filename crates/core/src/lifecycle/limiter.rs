//! Rate limiting of failed reconnect attempts, per session and per remote
//! address, so a token cannot be guessed or brute-forced. Only failures
//! count; a client holding a valid token is never slowed down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Timestamp;

/// Entries kept before stale ones are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Debug)]
pub(crate) struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    // key -> (start of its window, failures in it)
    failures: Mutex<HashMap<String, (Timestamp, u32)>>,
}

impl FailureLimiter {
    pub(crate) fn new(max_failures: u32, window: Duration) -> Self {
        FailureLimiter {
            max_failures: max_failures.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while any of `keys` has used up its failures.
    pub(crate) fn check(&self, keys: &[String], now: Timestamp) -> Result<(), Duration> {
        let failures = self.failures.lock().expect("limiter poisoned");
        let wait = keys
            .iter()
            .filter_map(|k| failures.get(k))
            .filter(|(start, n)| *n >= self.max_failures && now < start.saturating_add(self.window))
            .map(|(start, _)| start.saturating_add(self.window).since(now))
            .max();
        wait.map_or(Ok(()), Err)
    }

    pub(crate) fn fail(&self, keys: &[String], now: Timestamp) {
        let mut failures = self.failures.lock().expect("limiter poisoned");
        if failures.len() >= SWEEP_AT {
            let window = self.window;
            failures.retain(|_, (start, _)| now < start.saturating_add(window));
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert((now, 0));
            if now >= entry.0.saturating_add(self.window) {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_beyond_the_limit_block_until_the_window_passes() {
        let l = FailureLimiter::new(2, Duration::from_secs(60));
        let t0 = Timestamp::from_millis(1_000_000);
        let keys = vec!["session:a".to_string(), "addr:1".to_string()];
        assert!(l.check(&keys, t0).is_ok());
        l.fail(&keys, t0);
        assert!(l.check(&keys, t0).is_ok());
        l.fail(&keys, t0);
        let wait = l.check(&keys, t0.saturating_add(Duration::from_secs(10)));
        assert_eq!(wait, Err(Duration::from_secs(50)));
        // The address is blocked for another session too.
        assert!(l
            .check(&["session:b".to_string(), "addr:1".to_string()], t0)
            .is_err());
        assert!(l
            .check(&keys, t0.saturating_add(Duration::from_secs(60)))
            .is_ok());
    }
}
