//! The reconnect scenario: a session dropped past the idle timeout is
//! reclaimed with its reconnect token, and the server's counts match the
//! client's.

use super::worker::Client;
use crate::checks;
use crate::mcp_client::Failure;
use crate::stats::SessionEvent;

impl Client {
    /// Reconnect: calls, then a drop (silence past the timeout), a probe that
    /// must find the session expired, and a reclaim with the reconnect token
    /// in place; at the end the server's counts must match the client's.
    pub(super) async fn reconnect(&mut self) {
        let timeout = self.ctx.idle_timeout.unwrap_or_default();
        let tolerance = self.ctx.args.tolerance;
        if !self.open_retrying().await {
            return;
        }
        // Requests the server should have counted on this session id:
        // initialize and tools/list so far (notifications are not requests).
        let mut expected: u64 = 2;
        let mut reconnects: u64 = 0;
        // A request that failed in transit may or may not have been counted.
        let mut certain = true;
        let mut n = 0;
        while self.more(n) {
            n += 1;
            for _ in 0..self.ctx.args.calls_per_session {
                match self.call(false).await {
                    Ok(_) => expected += 1,
                    Err(f) => {
                        self.record(&f);
                        match f {
                            Failure::Rpc { .. } | Failure::Tool(_) | Failure::WrongAnswer(_) => {
                                expected += 1
                            }
                            _ => certain = false,
                        }
                    }
                }
            }
            let Some(id) = self.session.id.clone() else {
                return;
            };
            self.pause(timeout + tolerance).await;
            if self.stopped() {
                break;
            }
            match self.probe(&id).await {
                Err(f) if f.is_not_found() => self.checks().pass(checks::DROPPED_EXPIRED),
                Ok(()) => {
                    expected += 1;
                    self.checks().fail(
                        checks::DROPPED_EXPIRED,
                        Some(&id),
                        format!(
                            "still active after {:.1} s of silence",
                            (timeout + tolerance).as_secs_f64()
                        ),
                    );
                    continue;
                }
                Err(f) => {
                    self.record(&f);
                    self.checks()
                        .fail(checks::DROPPED_EXPIRED, Some(&id), f.to_string());
                }
            }
            self.ctx.stats.session(SessionEvent::Expired);
            if self.session.token.is_none() {
                // The server offers no reconnect: start over, as a client must.
                self.open_retrying().await;
                (expected, reconnects, certain) = (2, 0, true);
                continue;
            }
            match self.call(true).await {
                Ok(Some(_)) => {
                    expected += 1;
                    reconnects += 1;
                    self.checks().pass(checks::RECLAIMED);
                    self.ctx.stats.session(SessionEvent::Reconnected);
                }
                outcome => {
                    let detail = match outcome {
                        Ok(_) => "answered without a new reconnect token".to_string(),
                        Err(f) => {
                            self.record(&f);
                            f.to_string()
                        }
                    };
                    self.checks().fail(checks::RECLAIMED, Some(&id), detail);
                    self.open_retrying().await;
                    (expected, reconnects, certain) = (2, 0, true);
                }
            }
            self.progressed();
        }
        if let (Some(api), Some(id), true) = (&self.ctx.admin, self.session.id.clone(), certain) {
            let verdict = match api.session(&id).await {
                Ok(Some(v)) if v.request_count == Some(expected) && v.reconnect_count == Some(reconnects) => Ok(()),
                Ok(Some(v)) => Err(format!(
                    "server counts {} requests and {} reconnects; the client sent {expected} and reclaimed {reconnects} times",
                    v.request_count.map_or("no".into(), |c| c.to_string()),
                    v.reconnect_count.map_or("no".into(), |c| c.to_string()),
                )),
                Ok(None) => Err("the health API does not know the session".into()),
                Err(e) => Err(e),
            };
            match verdict {
                Ok(()) => self.checks().pass(checks::COUNTS_MATCH),
                Err(e) => self.checks().fail(checks::COUNTS_MATCH, Some(&id), e),
            }
        }
        self.close().await;
    }
}
