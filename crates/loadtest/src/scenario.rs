//! What each client task does in each scenario, and the lifecycle checks it
//! makes on the way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use crate::admin::{AdminApi, SessionView};
use crate::checks::{self, Checks};
use crate::client::{Endpoint, Failure, Session};
use crate::options::{LoadtestArgs, Scenario};
use crate::stats::{Op, SessionEvent, Stats};
use crate::tools::{check_result, ToolMix};

/// How long the load runs.
pub struct Plan {
    pub deadline: Option<Instant>,
    pub iterations: Option<u64>,
}

/// Everything the client tasks share.
pub struct Ctx {
    pub endpoint: Arc<Endpoint>,
    pub stats: Arc<Stats>,
    pub checks: Arc<Checks>,
    pub tools: ToolMix,
    pub admin: Option<AdminApi>,
    pub idle_timeout: Option<Duration>,
    pub idle_time: Duration,
    pub args: LoadtestArgs,
    pub plan: Plan,
    pub stop: watch::Receiver<bool>,
    /// Lifecycle: idle sessions whose check is still to come.
    pub idle_pending: AtomicUsize,
    /// Lifecycle: which clients go idle.
    pub idle_clients: Vec<bool>,
}

/// Pause before retrying after a failed session open.
const BACKOFF: Duration = Duration::from_millis(100);
/// Failed opens in a row after which a client without a deadline stops.
const MAX_OPEN_FAILURES: u32 = 10;

/// Runs client `index` to the end of the plan.
pub async fn client(ctx: Arc<Ctx>, index: usize) {
    let mut c = Client::new(ctx.clone(), index);
    match ctx.args.scenario {
        Scenario::Throughput => c.throughput().await,
        Scenario::Churn => c.churn().await,
        Scenario::Lifecycle => c.lifecycle(ctx.idle_clients[index]).await,
        Scenario::Reconnect if c.session.stateless => c.throughput().await,
        Scenario::Reconnect => c.reconnect().await,
        // Roles go by pairs of clients, so with --protocol mixed (which
        // alternates by client) every role has both generations.
        Scenario::Mixed => match (index / 2) % 5 {
            0 | 2 => c.throughput().await,
            1 => c.churn().await,
            3 => c.idler().await,
            _ => c.dropper().await,
        },
    }
}

struct Client {
    ctx: Arc<Ctx>,
    index: usize,
    session: Session,
    calls: u64,
    stop: watch::Receiver<bool>,
}

impl Client {
    fn new(ctx: Arc<Ctx>, index: usize) -> Client {
        let session = Self::fresh(&ctx, index);
        let stop = ctx.stop.clone();
        Client {
            ctx,
            index,
            session,
            calls: 0,
            stop,
        }
    }

    fn fresh(ctx: &Ctx, index: usize) -> Session {
        let (version, stateless) = ctx.args.protocol.for_client(index);
        Session::new(ctx.endpoint.clone(), ctx.stats.clone(), version, stateless)
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    fn running(&self) -> bool {
        !self.stopped() && self.ctx.plan.deadline.is_none_or(|d| Instant::now() < d)
    }

    /// Whether another unit of work is due after `done` of them.
    fn more(&self, done: u64) -> bool {
        self.running() && self.ctx.plan.iterations.is_none_or(|k| done < k)
    }

    fn progressed(&self) {
        self.ctx.stats.progress.fetch_add(1, Ordering::Relaxed);
    }

    /// Sleeps for `d`, or until the run is interrupted.
    async fn pause(&mut self, d: Duration) {
        if d.is_zero() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.wait_for(|s| *s) => {}
        }
    }

    fn record(&self, f: &Failure) {
        self.ctx.stats.error(f.kind());
    }

    fn checks(&self) -> &Checks {
        &self.ctx.checks
    }

    /// Opens a session (sessionful revisions) and lists the tools, as a
    /// client starting up does.
    async fn open(&mut self) -> bool {
        let mut session = Self::fresh(&self.ctx, self.index);
        if !session.stateless {
            if let Err(f) = session.initialize().await {
                self.record(&f);
                self.pause(BACKOFF).await;
                return false;
            }
            if session.id.is_some() {
                self.ctx.stats.session(SessionEvent::Created);
            }
        }
        if let Err(f) = session
            .request(Op::ToolsList, "tools/list", json!({}), Vec::new(), false)
            .await
        {
            self.record(&f);
        }
        self.session = session;
        true
    }

    /// Opens a session, retrying while the run lasts; a run without a
    /// deadline (`--iterations`) gives up after a few failures in a row.
    async fn open_retrying(&mut self) -> bool {
        let mut failures = 0;
        while self.running() {
            if self.open().await {
                return true;
            }
            failures += 1;
            if self.ctx.plan.deadline.is_none() && failures >= MAX_OPEN_FAILURES {
                return false;
            }
        }
        false
    }

    /// One tool call from the mix; checks the answer.
    async fn call(&mut self, reclaim: bool) -> Result<Option<String>, Failure> {
        self.calls += 1;
        let ctx = self.ctx.clone();
        let text = format!("lt-{}-{}", self.index, self.calls);
        let call = ctx.tools.call(self.calls, &text);
        let op = if reclaim { Op::Reclaim } else { Op::ToolsCall };
        let params = json!({"name": call.tool.name, "arguments": call.args});
        let reply = self
            .session
            .request(op, "tools/call", params, call.headers, reclaim)
            .await?;
        check_result(&reply.result, call.expect.as_deref())?;
        if call.expect.is_some() {
            ctx.stats.verified();
        }
        Ok(reply.token)
    }

    /// A tool call whose failure is counted; a session the server no longer
    /// knows is replaced.
    async fn call_counted(&mut self) -> Result<(), Failure> {
        let outcome = self.call(false).await.map(drop);
        if let Err(f) = &outcome {
            self.record(f);
            if f.is_not_found() && self.session.id.is_some() {
                self.ctx.stats.session(SessionEvent::Abandoned);
                self.session.id = None;
                self.open_retrying().await;
            }
        }
        outcome
    }

    /// Ends the session with DELETE.
    async fn close(&mut self) {
        if self.session.id.is_none() {
            return;
        }
        match self.session.delete().await {
            Ok(()) => self.ctx.stats.session(SessionEvent::Deleted),
            Err(f) => {
                // 405: the server does not let clients end sessions.
                if !matches!(f, Failure::Status { status: 405, .. }) {
                    self.record(&f);
                }
                self.ctx.stats.session(SessionEvent::Abandoned);
            }
        }
    }

    /// A `ping` on session `id`, which may have ended.
    async fn probe(&mut self, id: &str) -> Result<(), Failure> {
        let saved = self.session.id.replace(id.to_string());
        let outcome = self
            .session
            .request(Op::Ping, "ping", json!({}), Vec::new(), false)
            .await
            .map(drop);
        self.session.id = saved;
        outcome
    }

    /// One session, tool calls as fast as `--think-time` allows.
    async fn throughput(&mut self) {
        if !self.open_retrying().await {
            return;
        }
        let mut n = 0;
        while self.more(n) {
            let _ = self.call_counted().await;
            n += 1;
            self.progressed();
            let think = self.ctx.args.think_time;
            self.pause(think).await;
        }
        self.close().await;
    }

    /// Sessions opened, used, closed, and checked gone.
    async fn churn(&mut self) {
        let mut n = 0;
        while self.more(n) {
            n += 1;
            if !self.open().await {
                continue;
            }
            for _ in 0..self.ctx.args.calls_per_session {
                let _ = self.call_counted().await;
                let think = self.ctx.args.think_time;
                self.pause(think).await;
            }
            let id = self.session.id.clone();
            self.close().await;
            self.progressed();
            if let Some(id) = id {
                match self.probe(&id).await {
                    Err(f) if f.is_not_found() => self.checks().pass(checks::DELETED_GONE),
                    Ok(()) => self.checks().fail(
                        checks::DELETED_GONE,
                        Some(&id),
                        "still answers after DELETE".into(),
                    ),
                    Err(f) => {
                        self.record(&f);
                        self.checks()
                            .fail(checks::DELETED_GONE, Some(&id), f.to_string())
                    }
                }
            }
        }
    }

    /// Bursts of calls separated by idle periods shorter than the timeout:
    /// the session must survive each.
    async fn idler(&mut self) {
        if !self.open_retrying().await {
            return;
        }
        let mut n = 0;
        while self.more(n) {
            n += 1;
            for _ in 0..self.ctx.args.calls_per_session {
                let _ = self.call_counted().await;
            }
            self.progressed();
            let idle = self.ctx.idle_time;
            self.pause(idle).await;
            if !self.running() {
                break;
            }
            match self.call(false).await {
                Err(f) if f.is_not_found() => {
                    let id = self.session.id.take();
                    self.checks().fail(
                        checks::ACTIVE_KEPT,
                        id.as_deref(),
                        format!(
                            "gone after idling {}, below the idle timeout",
                            humantime::format_duration(idle)
                        ),
                    );
                    self.ctx.stats.session(SessionEvent::Abandoned);
                    self.open_retrying().await;
                }
                Err(f) => self.record(&f),
                Ok(_) if self.session.id.is_some() => self.checks().pass(checks::ACTIVE_KEPT),
                Ok(_) => {}
            }
        }
        self.close().await;
    }

    /// Sessions used and then left without DELETE, as a client that
    /// vanishes leaves them.
    async fn dropper(&mut self) {
        let mut n = 0;
        while self.more(n) {
            n += 1;
            if !self.open().await {
                continue;
            }
            for _ in 0..self.ctx.args.calls_per_session {
                let _ = self.call_counted().await;
            }
            if self.session.id.take().is_some() {
                self.ctx.stats.session(SessionEvent::Abandoned);
            }
            self.progressed();
        }
    }

    /// Lifecycle: open, warm up, then either go idle and check the session
    /// expired on time, or stay active past the timeout and check it was kept.
    async fn lifecycle(&mut self, idle: bool) {
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
    async fn check_expired(&mut self, id: &str, last: Instant, timeout: Duration, tol: Duration) {
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

    /// Reconnect: calls, then a drop (silence past the timeout), a probe that
    /// must find the session expired, and a reclaim with the reconnect token
    /// in place; at the end the server's counts must match the client's.
    async fn reconnect(&mut self) {
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
