//! The final report: figures, errors by kind and lifecycle checks, as text
//! for a terminal and as JSON for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::checks::{CheckFailure, Tally};
use crate::options::Scenario;
use crate::stats::{Latency, OpFigures};
use crate::Error;

/// Session counts over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sessions {
    pub created: u64,
    /// Ended by the client's DELETE.
    pub deleted: u64,
    /// Seen expired by the server's idle timeout.
    pub expired: u64,
    /// Left without DELETE.
    pub abandoned: u64,
    /// Reclaimed with a reconnect token.
    pub reconnected: u64,
}

/// How the idle sessions' expiries went.
#[derive(Debug, Clone, Serialize)]
pub struct Expiry {
    /// `health API` (the server's session records) or `404 probe`.
    pub method: String,
    pub idle_timeout_s: f64,
    pub tolerance_s: f64,
    /// Seconds from the idle deadline to the server's disconnect (health API only).
    pub lag_s_p50: Option<f64>,
    pub lag_s_max: Option<f64>,
    pub lag_s_min: Option<f64>,
}

/// Lifecycle checks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checks {
    pub passed: u64,
    pub failed: u64,
    pub by_check: BTreeMap<&'static str, Tally>,
    pub failures: Vec<CheckFailure>,
    pub expiry: Option<Expiry>,
}

/// The tester's own cost.
#[derive(Debug, Clone, Serialize)]
pub struct Tester {
    pub cpu_seconds: f64,
    /// CPU seconds per wall-clock second: 1.0 is one core busy.
    pub cpu_cores: f64,
    pub max_rss_mib: f64,
}

/// What the tester learned of the server.
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub url: String,
    pub tools: Vec<String>,
    pub session_ids: bool,
    pub reconnect_tokens: bool,
    pub health_api: bool,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub protocol: String,
    pub clients: usize,
    pub elapsed_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_second: f64,
    pub latency_ms: Latency,
    pub by_operation: BTreeMap<&'static str, OpFigures>,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub sessions: Sessions,
    /// Tool answers that carried back the unique text sent.
    pub answers_verified: u64,
    pub checks: Checks,
    pub tester: Tester,
    pub server: Server,
    pub notes: Vec<String>,
    pub passed: bool,
}

/// At most this many failed checks are listed in the text report.
const LISTED_FAILURES: usize = 50;

impl Report {
    /// Writes the report as pretty-printed JSON.
    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        let body = serde_json::to_vec_pretty(self).map_err(|e| Error::Write {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        std::fs::write(path, body).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The report as text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "sessiongate loadtest: {:?} scenario, protocol {}, {} clients, {:.1} s against {}",
            self.scenario, self.protocol, self.clients, self.elapsed_s, self.server.url
        );
        let _ = writeln!(
            o,
            "  requests     {} ({:.0}/s), errors {}",
            self.requests, self.requests_per_second, self.errors
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            o,
            "  latency      p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            l.p50, l.p90, l.p99, l.max
        );
        for (op, f) in &self.by_operation {
            let l = &f.latency_ms;
            let _ = writeln!(
                o,
                "    {op:<40} {:>9}  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2} ms",
                f.requests, l.p50, l.p90, l.p99, l.max
            );
        }
        let s = &self.sessions;
        let _ = writeln!(
            o,
            "  sessions     created {}, deleted {}, expired {}, abandoned {}, reconnected {}",
            s.created, s.deleted, s.expired, s.abandoned, s.reconnected
        );
        if self.answers_verified > 0 {
            let _ = writeln!(
                o,
                "  answers      {} echoes carried back their own text",
                self.answers_verified
            );
        }
        if !self.errors_by_kind.is_empty() {
            let _ = writeln!(o, "  errors by kind");
            for (kind, n) in &self.errors_by_kind {
                let _ = writeln!(o, "    {kind:<40} {n:>9}");
            }
        }
        let c = &self.checks;
        if c.passed + c.failed > 0 {
            let _ = writeln!(o, "  checks       {} passed, {} failed", c.passed, c.failed);
            for (name, t) in &c.by_check {
                let _ = writeln!(
                    o,
                    "    {:<64} {:>6} passed {:>6} failed",
                    name, t.passed, t.failed
                );
            }
            if let Some(e) = &c.expiry {
                let _ = write!(
                    o,
                    "    expiry checked by {}: idle timeout {:.1} s, tolerance {:.1} s",
                    e.method, e.idle_timeout_s, e.tolerance_s
                );
                if let (Some(min), Some(p50), Some(max)) = (e.lag_s_min, e.lag_s_p50, e.lag_s_max) {
                    let _ = write!(
                        o,
                        "; disconnected {min:+.3} / {p50:+.3} / {max:+.3} s (min/p50/max) from the deadline"
                    );
                }
                let _ = writeln!(o);
            }
            for f in c.failures.iter().take(LISTED_FAILURES) {
                let _ = writeln!(
                    o,
                    "    FAILED {}: session {}: {}",
                    f.check,
                    f.session.as_deref().unwrap_or("-"),
                    f.detail
                );
            }
            if c.failures.len() > LISTED_FAILURES {
                let _ = writeln!(
                    o,
                    "    ... and {} more (all of them in --json)",
                    c.failures.len() - LISTED_FAILURES
                );
            }
        }
        let t = &self.tester;
        let _ = writeln!(
            o,
            "  tester       {:.1} CPU s ({:.2} cores), peak RSS {:.0} MiB",
            t.cpu_seconds, t.cpu_cores, t.max_rss_mib
        );
        for note in &self.notes {
            let _ = writeln!(o, "  note: {note}");
        }
        let _ = writeln!(
            o,
            "  result       {}",
            if self.passed { "PASSED" } else { "FAILED" }
        );
        o
    }
}
