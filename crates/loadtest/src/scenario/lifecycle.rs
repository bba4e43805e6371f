//! The lifecycle scenario: sessions left idle must expire on time, and
//! sessions kept busy past the idle timeout must be kept.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::worker::Client;
use crate::admin::SessionView;
use crate::checks;
use crate::stats::SessionEvent;

impl Client {
    /// Lifecycle: open, warm up, then either go idle and check the session
    /// expired on time, or stay active past the timeout and check it was kept.
    pub(super) async fn lifecycle(&mut self, idle: bool) {
        let timeout = self.ctx.idle_timeout.unwrap_or_default();
        let tolerance = self.ctx.args.tolerance;
        let mut opened = false;
        for _ in 0..3 {
            if self.open().await {
                opened = true;
                break;
            }
        }
        if opened {
            for _ in 0..self.ctx.args.calls_per_session {
                let _ = self.call_counted().await;
            }
        }
        let Some(id) = self.session.id.clone().filter(|_| opened) else {
            if idle {
                self.checks().fail(
                    checks::IDLE_EXPIRED,
                    None,
                    "could not open a session to check".into(),
                );
                self.ctx.idle_pending.fetch_sub(1, Ordering::AcqRel);
            } else if opened {
                // Stateless clients (mixed protocol) only add load.
                self.active_until(Instant::now() + timeout + tolerance)
                    .await;
            }
            return;
        };
        if idle {
            let last = Instant::now();
            self.pause(timeout + tolerance).await;
            if !self.stopped() {
                self.check_expired(&id, last, timeout, tolerance).await;
            }
            self.ctx.idle_pending.fetch_sub(1, Ordering::AcqRel);
            self.progressed();
            return;
        }
        let mut until = Instant::now() + timeout + tolerance;
        if let Some(d) = self.ctx.args.duration {
            until = until.max(Instant::now() + d);
        }
        if self.active_until(until).await {
            let kept = match &self.ctx.admin {
                Some(api) => match api.session(&id).await {
                    Ok(Some(v)) if v.active => Ok(()),
                    Ok(Some(v)) => Err(format!(
                        "ended ({}) while active",
                        v.disconnect_reason.as_deref().unwrap_or("no reason")
                    )),
                    Ok(None) => Err("the health API does not know it".into()),
                    Err(e) => Err(e),
                },
                None => Ok(()),
            };
            match kept {
                Ok(()) => self.checks().pass(checks::ACTIVE_KEPT),
                Err(e) => self.checks().fail(checks::ACTIVE_KEPT, Some(&id), e),
            }
            self.close().await;
        }
        self.progressed();
    }

    /// Keeps calling until `until` and until every idle session is checked.
    /// False when the session was lost (and that failure recorded).
    async fn active_until(&mut self, until: Instant) -> bool {
        let timeout = self.ctx.idle_timeout.unwrap_or_default();
        let think = if self.ctx.args.think_time.is_zero() {
            (timeout / 5).min(Duration::from_secs(1))
        } else {
            self.ctx.args.think_time
        };
        while !self.stopped()
            && (Instant::now() < until || self.ctx.idle_pending.load(Ordering::Acquire) > 0)
        {
            match self.call(false).await {
                Err(f) if f.is_not_found() && self.session.id.is_some() => {
                    self.record(&f);
                    let id = self.session.id.take();
                    self.checks().fail(
                        checks::ACTIVE_KEPT,
                        id.as_deref(),
                        format!("disconnected while active ({f})"),
                    );
                    self.ctx.stats.session(SessionEvent::Abandoned);
                    return false;
                }
                Err(f) => self.record(&f),
                Ok(_) => {}
            }
            self.pause(think).await;
        }
        true
    }

    /// Whether session `id`, idle since `last`, is gone within timeout ±
    /// tolerance: from its record when the server has a health API, else by
    /// the 404 a request on it must get.
    pub(super) async fn check_expired(
        &mut self,
        id: &str,
        last: Instant,
        timeout: Duration,
        tol: Duration,
    ) {
        let idle = last.elapsed().as_secs_f64();
        let outlived = || {
            format!(
                "outlived the idle timeout: idle {idle:.1} s (timeout {:.1} s + tolerance {:.1} s) and still active",
                timeout.as_secs_f64(),
                tol.as_secs_f64()
            )
        };
        let verdict = match &self.ctx.admin {
            Some(api) => match api.session(id).await {
                Ok(Some(v)) if v.active => Err(outlived()),
                Ok(Some(v)) => self.expiry_of(&v, timeout, tol),
                Ok(None) => Err("the health API does not know the session".into()),
                Err(e) => Err(e),
            },
            None => match self.probe(id).await {
                Err(f) if f.is_not_found() => Ok(()),
                Ok(()) => {
                    // The probe was activity; end the session it kept alive.
                    self.session.id = Some(id.to_string());
                    self.close().await;
                    Err(outlived())
                }
                Err(f) => Err(format!("the probe failed: {f}")),
            },
        };
        match verdict {
            Ok(()) => {
                self.checks().pass(checks::IDLE_EXPIRED);
                self.ctx.stats.session(SessionEvent::Expired);
            }
            Err(detail) => self.checks().fail(checks::IDLE_EXPIRED, Some(id), detail),
        }
    }

    /// Reads an ended session's record: ended by the timeout, at its deadline.
    fn expiry_of(&self, v: &SessionView, timeout: Duration, tol: Duration) -> Result<(), String> {
        let reason = v.disconnect_reason.as_deref().unwrap_or("no reason");
        if reason != "timeout" {
            return Err(format!("ended with {reason}, not by the idle timeout"));
        }
        let (Some(last), Some(end)) = (v.last_activity, v.disconnected_at) else {
            return Err("the record lacks last_activity or disconnected_at".into());
        };
        let lag = (end - last).as_seconds_f64() - timeout.as_secs_f64();
        self.checks().expiry_lag(lag);
        if lag.abs() > tol.as_secs_f64() {
            return Err(format!(
                "disconnected {lag:+.3} s from its deadline (tolerance {:.1} s)",
                tol.as_secs_f64()
            ));
        }
        Ok(())
    }
}
