//! One client task: what the tasks share, and the moves every scenario is
//! made of — open a session, call a tool, close, probe, pause — each
//! counted in the run's statistics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use crate::admin::AdminApi;
use crate::checks::Checks;
use crate::mcp_client::{Endpoint, Failure, Session};
use crate::options::LoadtestArgs;
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

/// One client task: its session and the moves every scenario is made of.
pub(super) struct Client {
    pub(super) ctx: Arc<Ctx>,
    pub(super) index: usize,
    pub(super) session: Session,
    calls: u64,
    stop: watch::Receiver<bool>,
}

impl Client {
    pub(super) fn new(ctx: Arc<Ctx>, index: usize) -> Client {
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

    pub(super) fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    pub(super) fn running(&self) -> bool {
        !self.stopped() && self.ctx.plan.deadline.is_none_or(|d| Instant::now() < d)
    }

    /// Whether another unit of work is due after `done` of them.
    pub(super) fn more(&self, done: u64) -> bool {
        self.running() && self.ctx.plan.iterations.is_none_or(|k| done < k)
    }

    pub(super) fn progressed(&self) {
        self.ctx.stats.progress.fetch_add(1, Ordering::Relaxed);
    }

    /// Sleeps for `d`, or until the run is interrupted.
    pub(super) async fn pause(&mut self, d: Duration) {
        if d.is_zero() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.wait_for(|s| *s) => {}
        }
    }

    pub(super) fn record(&self, f: &Failure) {
        self.ctx.stats.error(f.kind());
    }

    pub(super) fn checks(&self) -> &Checks {
        &self.ctx.checks
    }

    /// Opens a session (sessionful revisions) and lists the tools, as a
    /// client starting up does.
    pub(super) async fn open(&mut self) -> bool {
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
    pub(super) async fn open_retrying(&mut self) -> bool {
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
    pub(super) async fn call(&mut self, reclaim: bool) -> Result<Option<String>, Failure> {
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
    pub(super) async fn call_counted(&mut self) -> Result<(), Failure> {
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
    pub(super) async fn close(&mut self) {
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
    pub(super) async fn probe(&mut self, id: &str) -> Result<(), Failure> {
        let saved = self.session.id.replace(id.to_string());
        let outcome = self
            .session
            .request(Op::Ping, "ping", json!({}), Vec::new(), false)
            .await
            .map(drop);
        self.session.id = saved;
        outcome
    }
}
