//! The steady-load roles: one session called as fast as allowed, sessions
//! opened and closed over and over, sessions idle between bursts, and
//! sessions dropped without DELETE.

use super::worker::Client;
use crate::checks;
use crate::stats::SessionEvent;

impl Client {
    /// One session, tool calls as fast as `--think-time` allows.
    pub(super) async fn throughput(&mut self) {
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
    pub(super) async fn churn(&mut self) {
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
    pub(super) async fn idler(&mut self) {
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
    pub(super) async fn dropper(&mut self) {
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
}
