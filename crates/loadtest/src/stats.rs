//! What the clients measure, shared by every client task: request counts and
//! latencies per operation (HDR histograms), errors by kind, session counts.
//! Recording is a few atomics and one short lock per request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// The kinds of request the clients make, each with its own histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Initialize,
    Initialized,
    ToolsList,
    ToolsCall,
    Ping,
    Delete,
    /// A request that carries a reconnect token to reclaim a timed-out session.
    Reclaim,
}

impl Op {
    const ALL: [Op; 7] = [
        Op::Initialize,
        Op::Initialized,
        Op::ToolsList,
        Op::ToolsCall,
        Op::Ping,
        Op::Delete,
        Op::Reclaim,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Initialize => "initialize",
            Op::Initialized => "notifications/initialized",
            Op::ToolsList => "tools/list",
            Op::ToolsCall => "tools/call",
            Op::Ping => "ping",
            Op::Delete => "DELETE",
            Op::Reclaim => "reclaim (tools/call + reconnect token)",
        }
    }
}

/// Microseconds, 1 µs to 1 hour, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

struct Histograms {
    all: Histogram<u64>,
    /// Since the last live summary.
    recent: Histogram<u64>,
    by_op: Vec<(Histogram<u64>, u64)>,
}

/// Session events the report counts.
#[derive(Debug, Clone, Copy)]
pub enum SessionEvent {
    Created,
    /// Ended by the client's DELETE.
    Deleted,
    /// Seen expired by the server's idle timeout.
    Expired,
    /// Left without DELETE (an abrupt drop).
    Abandoned,
    /// Reclaimed with a reconnect token.
    Reconnected,
}

/// Everything measured, shared by the client tasks.
pub struct Stats {
    requests: AtomicU64,
    errors: AtomicU64,
    hist: Mutex<Histograms>,
    error_kinds: Mutex<BTreeMap<String, u64>>,
    created: AtomicU64,
    deleted: AtomicU64,
    expired: AtomicU64,
    abandoned: AtomicU64,
    reconnected: AtomicU64,
    open: AtomicI64,
    verified: AtomicU64,
    /// Units of planned work done (for the progress bar).
    pub progress: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            hist: Mutex::new(Histograms {
                all: histogram(),
                recent: histogram(),
                by_op: Op::ALL.iter().map(|_| (histogram(), 0)).collect(),
            }),
            error_kinds: Mutex::new(BTreeMap::new()),
            created: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            reconnected: AtomicU64::new(0),
            open: AtomicI64::new(0),
            verified: AtomicU64::new(0),
            progress: AtomicU64::new(0),
        }
    }
}

/// Figures of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// The live figures since the previous snapshot.
pub struct Recent {
    pub requests: u64,
    pub errors: u64,
    pub latency: Latency,
    pub open_sessions: i64,
    pub created: u64,
}

/// Per-operation figures for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpFigures {
    pub requests: u64,
    pub latency_ms: Latency,
}

/// The final figures.
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub latency: Latency,
    pub by_op: BTreeMap<&'static str, OpFigures>,
    pub error_kinds: BTreeMap<String, u64>,
    pub created: u64,
    pub deleted: u64,
    pub expired: u64,
    pub abandoned: u64,
    pub reconnected: u64,
    pub verified: u64,
}

impl Stats {
    /// One answered (or failed) request and how long it took.
    pub fn request(&self, op: Op, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut h = self.hist.lock().unwrap_or_else(|e| e.into_inner());
        h.all.saturating_record(us);
        h.recent.saturating_record(us);
        let (hist, count) = &mut h.by_op[op as usize];
        hist.saturating_record(us);
        *count += 1;
    }

    /// A request that failed, by kind (`http 404`, `jsonrpc -32601`, `timeout`...).
    pub fn error(&self, kind: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self
            .error_kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    pub fn session(&self, event: SessionEvent) {
        let counter = match event {
            SessionEvent::Created => {
                self.open.fetch_add(1, Ordering::Relaxed);
                &self.created
            }
            SessionEvent::Deleted => {
                self.open.fetch_sub(1, Ordering::Relaxed);
                &self.deleted
            }
            SessionEvent::Expired => {
                self.open.fetch_sub(1, Ordering::Relaxed);
                &self.expired
            }
            SessionEvent::Abandoned => {
                self.open.fetch_sub(1, Ordering::Relaxed);
                &self.abandoned
            }
            SessionEvent::Reconnected => {
                self.open.fetch_add(1, Ordering::Relaxed);
                &self.reconnected
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A tool answer that carried back the unique text the client sent.
    pub fn verified(&self) {
        self.verified.fetch_add(1, Ordering::Relaxed);
    }

    /// Figures since the previous call, for the live summary.
    pub fn recent(&self, prev_requests: &mut u64, prev_errors: &mut u64) -> Recent {
        let latency = {
            let mut h = self.hist.lock().unwrap_or_else(|e| e.into_inner());
            let l = Latency::of(&h.recent);
            h.recent.reset();
            l
        };
        let requests = self.requests.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let recent = Recent {
            requests: requests - *prev_requests,
            errors: errors - *prev_errors,
            latency,
            open_sessions: self.open.load(Ordering::Relaxed),
            created: self.created.load(Ordering::Relaxed),
        };
        *prev_requests = requests;
        *prev_errors = errors;
        recent
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn totals(&self) -> Totals {
        let h = self.hist.lock().unwrap_or_else(|e| e.into_inner());
        let by_op = Op::ALL
            .iter()
            .zip(&h.by_op)
            .filter(|(_, (_, n))| *n > 0)
            .map(|(op, (hist, n))| {
                (
                    op.name(),
                    OpFigures {
                        requests: *n,
                        latency_ms: Latency::of(hist),
                    },
                )
            })
            .collect();
        Totals {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency: Latency::of(&h.all),
            by_op,
            error_kinds: self
                .error_kinds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            created: self.created.load(Ordering::Relaxed),
            deleted: self.deleted.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            reconnected: self.reconnected.load(Ordering::Relaxed),
            verified: self.verified.load(Ordering::Relaxed),
        }
    }
}
