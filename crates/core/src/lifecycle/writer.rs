//! Write-behind to the store. Two tasks own all writes:
//!
//! * the session writer applies creations and ends in group commits (every
//!   caller waiting at the same time shares one transaction, so a session is
//!   durable before `initialize` answers without a transaction per session),
//!   and flushes activity of touched sessions on an interval;
//! * the request-log writer drains a bounded queue in batches of at most
//!   `batch_rows` or every `flush_interval`, and prunes old rows.
//!
//! Neither runs on the request path; a full request-log queue applies
//! backpressure rather than dropping rows.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::reconnect::Redemption;
use crate::request_log::RequestLogEntry;
use crate::session::{SessionEnd, SessionRecord};
use crate::store::{SessionStore, StoreResult};

use super::RequestLogConfig;

pub(crate) enum SessionWrite {
    Create(Box<SessionRecord>, oneshot::Sender<StoreResult<()>>),
    End(SessionEnd, Option<oneshot::Sender<StoreResult<()>>>),
    /// Applied after the round's creations and ends, one by one.
    Redeem(Redemption, oneshot::Sender<StoreResult<Option<u64>>>),
}

const GROUP_MAX: usize = 1024;

/// Applies queued creations and ends, one transaction per kind per round.
pub(crate) async fn run_session_writer(
    store: Arc<dyn SessionStore>,
    mut rx: mpsc::Receiver<SessionWrite>,
    shutdown: CancellationToken,
) {
    let mut buf = Vec::with_capacity(GROUP_MAX);
    loop {
        let closing = tokio::select! {
            biased;
            n = rx.recv_many(&mut buf, GROUP_MAX) => n == 0,
            _ = shutdown.cancelled() => true,
        };
        if closing {
            while let Ok(op) = rx.try_recv() {
                buf.push(op);
            }
        }
        let mut creates = Vec::new();
        let mut create_acks = Vec::new();
        let mut ends = Vec::new();
        let mut end_acks = Vec::new();
        let mut redemptions = Vec::new();
        for op in buf.drain(..) {
            match op {
                SessionWrite::Create(rec, ack) => {
                    creates.push(*rec);
                    create_acks.push(ack);
                }
                SessionWrite::End(end, ack) => {
                    ends.push(end);
                    end_acks.extend(ack);
                }
                SessionWrite::Redeem(r, ack) => redemptions.push((r, ack)),
            }
        }
        if !creates.is_empty() {
            let result = store.insert_sessions(&creates).await;
            if let Err(e) = &result {
                metrics::counter!("sessiongate_store_errors_total", "operation" => "create")
                    .increment(1);
                tracing::error!(error = %e, count = creates.len(), "storing new sessions failed");
            }
            for ack in create_acks {
                let _ = ack.send(clone_result(&result));
            }
        }
        if !ends.is_empty() {
            let result = store.end_sessions(&ends).await.map(|_| ());
            if let Err(e) = &result {
                metrics::counter!("sessiongate_store_errors_total", "operation" => "end")
                    .increment(1);
                tracing::error!(error = %e, count = ends.len(), "storing session ends failed");
            }
            for ack in end_acks {
                let _ = ack.send(clone_result(&result));
            }
        }
        for (r, ack) in redemptions {
            let _ = ack.send(store.redeem_reconnect_token(&r).await);
        }
        if closing {
            return;
        }
    }
}

fn clone_result(r: &StoreResult<()>) -> StoreResult<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) => Err(crate::store::StoreError::Database(e.to_string())),
    }
}

/// Drains the request-log queue into the store until the queue closes.
pub(crate) async fn run_request_log_writer(
    store: Arc<dyn SessionStore>,
    clock: SharedClock,
    config: RequestLogConfig,
    mut rx: mpsc::Receiver<RequestLogEntry>,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<RequestLogEntry> = Vec::with_capacity(config.batch_rows);
    let mut last_prune = None;
    loop {
        // Wait for the first row, then gather until the batch is full or the
        // flush interval since that first row has passed.
        let closing = tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, config.batch_rows) => n == 0,
            _ = shutdown.cancelled() => true,
        };
        if closing {
            while let Ok(row) = rx.try_recv() {
                batch.push(row);
                if batch.len() == config.batch_rows {
                    write_with_retry(&*store, &batch).await;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                write_with_retry(&*store, &batch).await;
            }
            return;
        }
        // Let rows gather for the flush interval without waiting on the
        // queue: a receiver parked on it is woken by every send, which
        // costs the request path a task wake-up per request under load.
        if batch.len() < config.batch_rows {
            tokio::select! {
                _ = tokio::time::sleep(config.flush_interval) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        loop {
            let room = config.batch_rows - batch.len();
            if room > 0 {
                while let Ok(row) = rx.try_recv() {
                    batch.push(row);
                    if batch.len() == config.batch_rows {
                        break;
                    }
                }
            }
            let full = batch.len() == config.batch_rows;
            write_with_retry(&*store, &batch).await;
            batch.clear();
            if !full {
                break;
            }
        }

        let now = clock.now();
        if last_prune.is_none_or(|at| now.since(at) >= config.prune_interval) {
            last_prune = Some(now);
            match store
                .prune_requests(now.saturating_sub(config.retention))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "pruned request log"),
                Err(e) => tracing::warn!(error = %e, "pruning the request log failed"),
            }
        }
    }
}

/// Retries a failed batch a few times: the queue behind it fills meanwhile and
/// slows the request path down instead of losing rows.
async fn write_with_retry(store: &dyn SessionStore, rows: &[RequestLogEntry]) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=8 {
        let started = std::time::Instant::now();
        let written = store.insert_requests(rows).await;
        metrics::histogram!("sessiongate_request_log_flush_seconds")
            .record(started.elapsed().as_secs_f64());
        match written {
            Ok(()) => return,
            Err(e) => {
                metrics::counter!("sessiongate_store_errors_total", "operation" => "request_log")
                    .increment(1);
                tracing::warn!(error = %e, attempt, rows = rows.len(), "writing request log failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    tracing::error!(
        rows = rows.len(),
        "dropping request-log rows after repeated failures"
    );
}
