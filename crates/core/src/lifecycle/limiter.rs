//! Rate limiting: of failed reconnect attempts, per session and per remote
//! address, so a token cannot be guessed or brute-forced (only failures
//! count; a client holding a valid token is never slowed down); and of
//! requests per remote address, with a token bucket (`initialize`, which
//! creates a durable session each time).

use std::collections::HashMap;
use std::net::IpAddr;
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

/// A request refused by a [`RateLimiter`]: the client may retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests from this address; retry in {}s", .retry_after.as_secs().max(1))]
pub struct RateLimited {
    pub retry_after: Duration,
}

/// The key limits count a remote address under: itself for IPv4 (and
/// IPv4-mapped IPv6), its /64 for IPv6, the block one host usually holds.
pub fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
        v4 => v4,
    }
}

/// A token bucket per remote address: `burst` requests at once, refilled at
/// `per_second`. IPv6 addresses share a bucket per /64, the block one host
/// usually holds.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    // key -> (tokens, when they were counted)
    buckets: Mutex<HashMap<IpAddr, (f64, Timestamp)>>,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: u32) -> Self {
        RateLimiter {
            per_second: per_second.max(f64::MIN_POSITIVE),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token of `addr`'s bucket, or says how long until one is there.
    pub fn acquire(&self, addr: IpAddr, now: Timestamp) -> Result<(), RateLimited> {
        let key = address_key(addr);
        let mut buckets = self.buckets.lock().expect("limiter poisoned");
        if buckets.len() >= SWEEP_AT {
            // A bucket that has refilled is the same as none.
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(key).or_insert((self.burst, now));
        let refilled = (*tokens + now.since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(RateLimited {
                retry_after: Duration::from_secs_f64((1.0 - refilled) / self.per_second),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let l = RateLimiter::new(2.0, 3);
        let t0 = Timestamp::from_millis(1_000_000);
        let a = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..3 {
            assert!(l.acquire(a, t0).is_ok());
        }
        let refused = l.acquire(a, t0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        // Another address has its own bucket.
        assert!(l.acquire(IpAddr::from([10, 0, 0, 2]), t0).is_ok());
        let later = t0.saturating_add(Duration::from_millis(500));
        assert!(l.acquire(a, later).is_ok());
        assert!(l.acquire(a, later).is_err());
    }

    #[test]
    fn an_ipv6_host_cannot_escape_by_changing_its_interface_id() {
        let l = RateLimiter::new(1.0, 1);
        let t0 = Timestamp::from_millis(1_000_000);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        assert!(l.acquire(one, t0).is_ok());
        assert!(l.acquire(two, t0).is_err());
    }

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
