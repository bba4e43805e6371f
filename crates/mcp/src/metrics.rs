//! The MCP endpoint's request metrics: `sessiongate_request_duration_seconds`
//! by method, tool, outcome and protocol generation.
//!
//! Each label set's histogram is looked up in the recorder once and kept:
//! building and hashing the labels per request cost more than recording.
//! Labels come only from the server's own vocabulary (see the caller), so
//! the set stays small.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use metrics::Histogram;

/// Histograms of one method and tool, by outcome and generation.
type ByOutcome = [Option<Histogram>; 4];

#[derive(Default)]
pub(crate) struct RequestDurations {
    by_method: RwLock<HashMap<String, HashMap<String, ByOutcome>>>,
}

impl RequestDurations {
    /// Records one request. `tool` is empty for methods other than `tools/call`.
    pub(crate) fn record(
        &self,
        method: &str,
        tool: &str,
        failed: bool,
        stateless: bool,
        took: Duration,
    ) {
        let slot = usize::from(failed) * 2 + usize::from(stateless);
        let secs = took.as_secs_f64();
        if let Ok(known) = self.by_method.read() {
            if let Some(h) = known.get(method).and_then(|t| t.get(tool)?[slot].as_ref()) {
                h.record(secs);
                return;
            }
        }
        let h = metrics::histogram!(
            "sessiongate_request_duration_seconds",
            "method" => method.to_string(),
            "tool" => tool.to_string(),
            "status" => if failed { "error" } else { "success" },
            "generation" => if stateless { "2026-07-28" } else { "sessionful" },
        );
        h.record(secs);
        if let Ok(mut known) = self.by_method.write() {
            known
                .entry(method.to_string())
                .or_default()
                .entry(tool.to_string())
                .or_default()[slot] = Some(h);
        }
    }
}
