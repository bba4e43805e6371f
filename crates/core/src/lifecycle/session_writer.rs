//! The session writer: the one task that writes session rows. It applies
//! creations and ends in group commits (every caller waiting at the same
//! time shares one transaction, so a session is durable before `initialize`
//! answers without a transaction per session), and token redemptions after
//! them, so a redemption lands after any end still queued.
//!
//! It never runs on the request path. A write that fails is never
//! acknowledged: a creation or end a client waits for fails back to it (and
//! it gets a 503), a timeout's end is retried until the store takes it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::session::{SessionEnd, SessionRecord};
use crate::store::{Store, StoreResult};
use crate::token::Redemption;

/// One write for the session writer, with where its outcome goes.
pub(crate) enum SessionWrite {
    Create(Box<SessionRecord>, oneshot::Sender<StoreResult<()>>),
    /// Without a sender (a timeout) the end is retried until it is written.
    End(SessionEnd, Option<oneshot::Sender<StoreResult<()>>>),
    /// Applied after the round's creations and ends, one by one.
    Redeem(Redemption, oneshot::Sender<StoreResult<Option<u64>>>),
}

/// Writes applied in one round, at most.
const GROUP_MAX: usize = 1024;
/// First pause before a failed write is tried again; it doubles up to
/// [`RETRY_MAX`], so the writers (this one and the request log's) notice a
/// store that came back within a quarter of a second.
pub(super) const RETRY_FIRST: Duration = Duration::from_millis(50);
pub(super) const RETRY_MAX: Duration = Duration::from_millis(250);

/// Applies queued creations and ends, one transaction per kind per round.
pub(crate) async fn run_session_writer(
    store: Arc<dyn Store>,
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
                let _ = ack.send(result.clone());
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
                        let _ = ack.send(result.clone());
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
