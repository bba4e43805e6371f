//! Reclaiming a session with a reconnect token: issuing tokens to a
//! session's holder or an admin, and redeeming them, which rotates the token
//! and, for a session that timed out, makes it active again in place.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::writer::SessionWrite;
use super::{LifecycleEvent, LiveSession, SessionManager};
use crate::ids::SessionId;
use crate::session::{DisconnectReason, SessionRecord, SessionStatus};
use crate::store::StoreError;
use crate::token::{IssuedToken, Redemption, Refusal, SigningKey, TokenHash};

/// Reconnect settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectConfig {
    /// How long a token stays valid.
    pub token_ttl: Duration,
    /// The signing key; `None` signs with a key made at startup, so tokens
    /// do not outlive the process (the program always passes its key file).
    pub key: Option<SigningKey>,
    /// Failed attempts allowed per session and per remote address within
    /// `failure_window`, before further attempts get 429.
    pub max_failures: u32,
    pub failure_window: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            token_ttl: Duration::from_secs(15 * 60),
            key: None,
            max_failures: 10,
            failure_window: Duration::from_secs(60),
        }
    }
}

/// Why a reconnect or token request failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconnectError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("too many failed reconnect attempts; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// A successful reconnect.
pub struct Reconnected {
    pub session: Arc<LiveSession>,
    pub reconnect_count: u64,
    /// The session's new token; the one used is spent.
    pub token: IssuedToken,
}

/// Whether a session that ended this way may be reclaimed. A client that
/// said goodbye, or a session an admin ended, stays ended.
fn revivable(reason: Option<DisconnectReason>) -> Result<(), Refusal> {
    match reason {
        Some(r @ (DisconnectReason::ClientDisconnect | DisconnectReason::AdminTerminated)) => {
            Err(Refusal::Ended(r))
        }
        _ => Ok(()),
    }
}

impl SessionManager {
    /// The session's record as far as reconnection is concerned: live if
    /// active, else from the store, refused if it may not be reclaimed.
    async fn reclaimable(
        &self,
        id: SessionId,
    ) -> Result<(SessionRecord, Option<Arc<LiveSession>>), ReconnectError> {
        if let Some(live) = self.active(id) {
            return Ok((live.record(), Some(live)));
        }
        let record = self
            .store
            .get_session(id)
            .await?
            .ok_or(Refusal::UnknownSession)?;
        revivable(record.disconnect_reason)?;
        Ok((record, None))
    }

    /// Issues a new token for a session, replacing its current one. For the
    /// session's holder or an authenticated admin only: the caller checks.
    pub async fn issue_token(&self, id: SessionId) -> Result<IssuedToken, ReconnectError> {
        let (record, _) = self.reclaimable(id).await?;
        let token = self
            .signer
            .issue(id, record.client.principal.as_deref(), self.clock.now());
        if !self.store.set_reconnect_token(id, token.grant).await? {
            return Err(Refusal::UnknownSession.into());
        }
        Ok(token)
    }

    pub fn token_ttl(&self) -> Duration {
        self.signer.ttl()
    }

    /// Redeems a reconnect token for session `id`. `principal` is the
    /// caller's, when known; `remote` its address, for rate limiting.
    pub async fn reconnect(
        &self,
        id: SessionId,
        token: &str,
        principal: Option<&str>,
        remote: Option<&str>,
    ) -> Result<Reconnected, ReconnectError> {
        let now = self.clock.now();
        let mut keys = vec![format!("session:{id}")];
        keys.extend(remote.map(|r| format!("addr:{r}")));
        self.limiter.check(&keys, now).map_err(|retry_after| {
            metrics::counter!("sessiongate_reconnects_total", "outcome" => "rate_limited")
                .increment(1);
            ReconnectError::RateLimited { retry_after }
        })?;
        let result = self.redeem(id, token, principal).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(ReconnectError::Refused(refusal)) => {
                tracing::info!(session = %id.short(), remote, %refusal, "reconnect refused");
                self.limiter.fail(&keys, now);
                "refused"
            }
            Err(_) => "error",
        };
        metrics::counter!("sessiongate_reconnects_total", "outcome" => outcome).increment(1);
        result
    }

    async fn redeem(
        &self,
        id: SessionId,
        token: &str,
        principal: Option<&str>,
    ) -> Result<Reconnected, ReconnectError> {
        let now = self.clock.now();
        let claims = self.signer.verify(token, now)?;
        if claims.sid != id.to_string() {
            return Err(Refusal::WrongSession.into());
        }
        let (record, live) = self.reclaimable(id).await?;
        let owner = record.client.principal.as_deref();
        if claims.principal.as_deref() != owner || principal.is_some_and(|p| Some(p) != owner) {
            return Err(Refusal::PrincipalMismatch.into());
        }
        let state = self
            .store
            .reconnect_state(id)
            .await?
            .ok_or(Refusal::UnknownSession)?;
        let presented = TokenHash::of(token);
        match state.current {
            Some(current) if current.hash.matches(&presented) => {
                if current.expires_at <= now {
                    return Err(Refusal::Expired.into());
                }
            }
            _ if state.used.is_some_and(|u| u.matches(&presented)) => {
                return Err(Refusal::Replayed.into())
            }
            _ => return Err(Refusal::Superseded.into()),
        }

        let next = self.signer.issue(id, owner, now);
        let redemption = Redemption {
            session_id: id,
            expected: presented,
            next: next.grant,
            // Not in the registry: ended, or its timeout is still being
            // written. Either way the row becomes active again.
            revive_at: live.is_none().then_some(now),
        };
        // Through the session writer, so it lands after any end still queued.
        let (ack, done) = oneshot::channel();
        self.writes
            .send(SessionWrite::Redeem(redemption, ack))
            .await
            .map_err(|_| ReconnectError::ShuttingDown)?;
        let count = done
            .await
            .map_err(|_| ReconnectError::ShuttingDown)??
            // Someone redeemed or replaced the token since we read it.
            .ok_or(Refusal::Replayed)?;

        let session = match live {
            Some(live) => {
                live.set_reconnect_count(count);
                self.touch(&live);
                live
            }
            None => self.revive(record, count),
        };
        tracing::info!(session = %id.short(), reconnect_count = count, "session reconnected");
        self.emit(LifecycleEvent::Reconnected(id, count));
        Ok(Reconnected {
            session,
            reconnect_count: count,
            token: next,
        })
    }

    /// Puts a reclaimed session back in the registry, active from now.
    fn revive(&self, mut record: SessionRecord, count: u64) -> Arc<LiveSession> {
        let now = self.clock.now();
        let was_disconnected = record.status == SessionStatus::Disconnected;
        record.status = SessionStatus::Active;
        record.disconnected_at = None;
        record.disconnect_reason = None;
        record.total_duration = None;
        record.last_activity = now;
        record.reconnect_count = count;
        let live = LiveSession::new(record);
        let live = self.sessions.entry(live.id()).or_insert(live).clone();
        self.deadlines
            .push(now.saturating_add(self.config.idle_timeout), live.id());
        if was_disconnected {
            // A revived session leaves the disconnected count.
            let _ =
                self.disconnected_total
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(1))
                    });
        }
        live
    }
}
