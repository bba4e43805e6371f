//! The bookkeeping a connection's watchdog, socket and requests share:
//! its requests in flight and last activity, the listener's open
//! connections, which one a new connection evicts at the cap, and when a
//! watchdog closes its connection.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use slab::Slab;
use tokio::sync::Notify;

use super::limits::ConnectionLimits;

/// One connection's state, shared by its watchdog, its I/O and its requests.
pub(super) struct Conn {
    /// Requests whose response is not yet fully sent.
    pub(super) in_flight: AtomicUsize,
    /// Milliseconds (since [`Shared::epoch`]) of the last request's start or end.
    pub(super) last_active: AtomicU64,
    /// When the first bytes of the next request's head arrived; 0 = none yet.
    pub(super) head_started: AtomicU64,
    pub(super) evicting: AtomicBool,
    pub(super) evict: Notify,
    /// Held here, so a request takes one reference count, its connection's.
    pub(super) shared: Arc<Shared>,
}

/// What every connection of one listener shares.
pub(super) struct Shared {
    pub(super) epoch: Instant,
    pub(super) limits: ConnectionLimits,
    max_connections: usize,
    /// MCP requests in flight at most: the rest is kept for the management API.
    pub(super) mcp_cap: usize,
    pub(super) mcp_in_flight: AtomicUsize,
    pub(super) open: Mutex<Slab<Arc<Conn>>>,
}

impl Shared {
    pub(super) fn new(limits: ConnectionLimits, max_connections: usize, mcp_cap: usize) -> Self {
        Shared {
            epoch: Instant::now(),
            limits,
            max_connections,
            mcp_cap,
            mcp_in_flight: AtomicUsize::new(0),
            open: Mutex::new(Slab::new()),
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        // Never 0, which means "none" in `head_started`.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Makes room for a new connection: `false` when every open one is busy.
    pub(super) fn admit(&self) -> bool {
        let open = self.open.lock().expect("connections poisoned");
        if open.len() < self.max_connections {
            return true;
        }
        let victim = open
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c.in_flight.load(Ordering::Relaxed) == 0)
            .filter(|c| !c.evicting.load(Ordering::Relaxed))
            .min_by_key(|c| c.last_active.load(Ordering::Relaxed));
        match victim {
            Some(c) => {
                c.evicting.store(true, Ordering::Relaxed);
                c.evict.notify_one();
                metrics::counter!("sessiongate_connections_closed_total", "reason" => "evicted")
                    .increment(1);
                true
            }
            None => false,
        }
    }
}

/// Why a watchdog closes its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Keep { until_ms: u64 },
    Close(&'static str),
}

impl Conn {
    /// A new connection of `shared`, active now.
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Conn {
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(shared.now_ms()),
            head_started: AtomicU64::new(0),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
            shared,
        }
    }

    pub(super) fn check(&self, now: u64, limits: &ConnectionLimits) -> Verdict {
        let header = limits.header_read_timeout.as_millis() as u64;
        let idle = limits.idle_timeout.as_millis() as u64;
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Verdict::Keep {
                until_ms: now + header.min(idle),
            };
        }
        let head = self.head_started.load(Ordering::Relaxed);
        if head != 0 {
            return match head + header {
                due if due <= now => Verdict::Close("header_timeout"),
                due => Verdict::Keep { until_ms: due },
            };
        }
        match self.last_active.load(Ordering::Relaxed) + idle {
            due if due <= now => Verdict::Close("idle"),
            // A request may start meanwhile: look again within the header timeout.
            due => Verdict::Keep {
                until_ms: due.min(now + header),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn conn(last_active: u64, head_started: u64, in_flight: usize) -> Conn {
        Conn {
            in_flight: AtomicUsize::new(in_flight),
            last_active: AtomicU64::new(last_active),
            head_started: AtomicU64::new(head_started),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
            shared: Arc::new(Shared::new(ConnectionLimits::default(), 1, 1)),
        }
    }

    #[test]
    fn a_watchdog_closes_half_sent_heads_and_idle_connections_only() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            ..ConnectionLimits::default()
        };
        // Idle since 1s: looked at again within the header timeout.
        assert_eq!(
            conn(1_000, 0, 0).check(2_000, &limits),
            Verdict::Keep { until_ms: 4_000 }
        );
        assert_eq!(
            conn(1_000, 0, 0).check(11_000, &limits),
            Verdict::Close("idle")
        );
        assert_eq!(
            conn(1_000, 5_000, 0).check(6_000, &limits),
            Verdict::Keep { until_ms: 7_000 }
        );
        assert_eq!(
            conn(1_000, 5_000, 0).check(7_000, &limits),
            Verdict::Close("header_timeout")
        );
        // A request in flight (a long call, an open stream) is never cut.
        assert!(matches!(
            conn(1_000, 0, 1).check(100_000, &limits),
            Verdict::Keep { .. }
        ));
    }
}
