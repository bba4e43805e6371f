//! Write-behind to the store. Two tasks own all writes:
//!
//! * the session writer applies creations and ends in group commits (every
//!   caller waiting at the same time shares one transaction, so a session is
//!   durable before `initialize` answers without a transaction per session),
//!   and flushes activity of touched sessions on an interval;
//! * the request-log writer drains a bounded queue in batches of at most
//!   `batch_rows` or every `flush_interval`, and prunes old rows.
//!
//! Neither runs on the request path. A write that fails is never
//! acknowledged: a creation or end a client waits for fails back to it (and
//! it gets a 503), a timeout's end and request-log rows are retried until
//! the store takes them. Meanwhile the request-log queue fills and requests
//! wait for room, then are refused ([`super::SessionManager::admit`]);
//! rows are never dropped while the server runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::request_log::RequestLogEntry;
use crate::session::{SessionEnd, SessionRecord};
use crate::store::{SessionStore, StoreResult};
use crate::token::Redemption;

use super::RequestLogConfig;

pub(crate) enum SessionWrite {
    Create(Box<SessionRecord>, oneshot::Sender<StoreResult<()>>),
    End(SessionEnd, Option<oneshot::Sender<StoreResult<()>>>),
    /// Applied after the round's creations and ends, one by one.
    Redeem(Redemption, oneshot::Sender<StoreResult<Option<u64>>>),
}

const GROUP_MAX: usize = 1024;
/// First pause before a failed write is tried again; it doubles up to
/// [`RETRY_MAX`], so the writers notice a store that came back within a
/// quarter of a second.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_millis(250);
/// How long a writer keeps retrying at shutdown before it gives up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Applies queued creations and ends, one transaction per kind per round.
pub(crate) async fn run_session_writer(
    store: Arc<dyn SessionStore>,
    mut rx: mpsc::Receiver<SessionWrite>,
    shutdown: CancellationToken,
) {
    let mut buf = Vec::with_capacity(GROUP_MAX);
    // Ends nobody waits for (timeouts) whose write failed: tried again
    // with the next round, or after a pause if none comes.
    let mut unwritten: Vec<SessionEnd> = Vec::new();
    let mut delay = RETRY_FIRST;
    loop {
        let closing = tokio::select! {
            biased;
            n = rx.recv_many(&mut buf, GROUP_MAX) => n == 0,
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(delay), if !unwritten.is_empty() => false,
        };
        if closing {
            while let Ok(op) = rx.try_recv() {
                buf.push(op);
            }
        }
        let mut creates = Vec::new();
        let mut create_acks = Vec::new();
        let mut ends = std::mem::take(&mut unwritten);
        let mut end_acks: Vec<Option<_>> = ends.iter().map(|_| None).collect();
        let mut redemptions = Vec::new();
        for op in buf.drain(..) {
            match op {
                SessionWrite::Create(rec, ack) => {
                    creates.push(*rec);
                    create_acks.push(ack);
                }
                SessionWrite::End(end, ack) => {
                    ends.push(end);
                    end_acks.push(ack);
                }
                SessionWrite::Redeem(r, ack) => redemptions.push((r, ack)),
            }
        }
        if !creates.is_empty() {
            let result = store.insert_sessions(&creates).await;
            if let Err(e) = &result {
                tracing::warn!(error = %e, count = creates.len(), "storing new sessions failed");
            }
            for ack in create_acks {
                let _ = ack.send(clone_result(&result));
            }
        }
        if !ends.is_empty() {
            let result = store.end_sessions(&ends).await.map(|_| ());
            if let Err(e) = &result {
                tracing::warn!(error = %e, count = ends.len(), "storing session ends failed");
            }
            for (end, ack) in ends.into_iter().zip(end_acks) {
                match ack {
                    Some(ack) => {
                        let _ = ack.send(clone_result(&result));
                    }
                    None if result.is_err() => unwritten.push(end),
                    None => {}
                }
            }
        }
        for (r, ack) in redemptions {
            let result = store.redeem_reconnect_token(&r).await;
            if let Ok(Some(_)) = result {
                // Revived: an end that timed out before must not follow.
                unwritten.retain(|e| e.session_id != r.session_id);
            }
            let _ = ack.send(result);
        }
        delay = if unwritten.is_empty() {
            RETRY_FIRST
        } else {
            (delay * 2).min(RETRY_MAX)
        };
        if closing {
            if !unwritten.is_empty() {
                // Still active in the store: the next start ends them as
                // timed out, at their deadlines.
                tracing::error!(
                    count = unwritten.len(),
                    "could not store the end of timed-out sessions before stopping"
                );
            }
            return;
        }
    }
}

fn clone_result(r: &StoreResult<()>) -> StoreResult<()> {
    use crate::store::StoreError;
    match r {
        Ok(()) => Ok(()),
        Err(StoreError::Database(m)) => Err(StoreError::Database(m.clone())),
        Err(StoreError::Corrupt(m)) => Err(StoreError::Corrupt(m.clone())),
        Err(StoreError::Migration(m)) => Err(StoreError::Migration(m.clone())),
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
                    write_with_retry(&*store, &batch, &shutdown).await;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                write_with_retry(&*store, &batch, &shutdown).await;
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
            write_with_retry(&*store, &batch, &shutdown).await;
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

/// Writes a batch, retrying until the store takes it: the queue behind it
/// fills meanwhile, and requests wait for room and then are refused rather
/// than losing rows. Only at shutdown does it give up, after
/// [`SHUTDOWN_GRACE`], and then it says how many rows it lost.
async fn write_with_retry(
    store: &dyn SessionStore,
    rows: &[RequestLogEntry],
    shutdown: &CancellationToken,
) {
    let mut delay = RETRY_FIRST;
    let mut attempt = 1u32;
    let mut give_up_at = None;
    loop {
        let started = std::time::Instant::now();
        let written = store.insert_requests(rows).await;
        metrics::histogram!("sessiongate_request_log_flush_seconds")
            .record(started.elapsed().as_secs_f64());
        let Err(e) = written else { return };
        if attempt == 1 || attempt.is_multiple_of(40) {
            tracing::warn!(error = %e, attempt, rows = rows.len(), "writing request log failed; retrying");
        }
        if shutdown.is_cancelled() {
            let at =
                *give_up_at.get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_GRACE);
            if tokio::time::Instant::now() >= at {
                metrics::counter!("sessiongate_request_log_rows_lost_total")
                    .increment(rows.len() as u64);
                tracing::error!(
                    rows = rows.len(),
                    "the store stayed unavailable at shutdown; request-log rows lost"
                );
                return;
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
        attempt += 1;
    }
}
