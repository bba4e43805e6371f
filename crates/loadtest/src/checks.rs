//! Lifecycle checks: each named check passes or fails per session, failures
//! say which session and why, and observed expiries keep their lag behind
//! the idle timeout.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The checks the scenarios make.
pub const IDLE_EXPIRED: &str = "idle session disconnected within timeout ± tolerance";
pub const ACTIVE_KEPT: &str = "active session kept";
pub const DELETED_GONE: &str = "deleted session answers 404";
pub const DROPPED_EXPIRED: &str = "dropped session expired";
pub const RECLAIMED: &str = "timed-out session reclaimed with its token";
pub const COUNTS_MATCH: &str = "server's request and reconnect counts match the client's";

/// One failed check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckFailure {
    pub check: &'static str,
    pub session: Option<String>,
    pub detail: String,
}

/// Passes and failures of one check.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
}

#[derive(Default)]
struct Inner {
    tallies: BTreeMap<&'static str, Tally>,
    failures: Vec<CheckFailure>,
    /// Seconds between the idle deadline and the server's disconnect.
    lags: Vec<f64>,
}

/// Results of every check, shared by the client tasks.
#[derive(Default)]
pub struct Checks {
    inner: Mutex<Inner>,
}

/// What the report shows of the checks.
pub struct CheckTotals {
    pub tallies: BTreeMap<&'static str, Tally>,
    pub failures: Vec<CheckFailure>,
    pub lags: Vec<f64>,
}

impl Checks {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn pass(&self, check: &'static str) {
        self.with(|i| i.tallies.entry(check).or_default().passed += 1);
    }

    pub fn fail(&self, check: &'static str, session: Option<&str>, detail: String) {
        self.with(|i| {
            i.tallies.entry(check).or_default().failed += 1;
            i.failures.push(CheckFailure {
                check,
                session: session.map(str::to_string),
                detail,
            });
        });
    }

    /// An expiry the server's records place `lag` seconds after the deadline
    /// (negative: before it).
    pub fn expiry_lag(&self, lag: f64) {
        self.with(|i| i.lags.push(lag));
    }

    pub fn failed(&self) -> u64 {
        self.with(|i| i.tallies.values().map(|t| t.failed).sum())
    }

    pub fn totals(&self) -> CheckTotals {
        self.with(|i| CheckTotals {
            tallies: i.tallies.clone(),
            failures: i.failures.clone(),
            lags: i.lags.clone(),
        })
    }
}
