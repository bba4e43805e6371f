//! Reclaiming a session with a reconnect token: issuing tokens to a
//! session's holder or an admin, and redeeming them, which rotates the token
//! and, for a session that timed out, makes it active again in place.

use std::sync::Arc;
use std::time::Duration;

use super::active::ActiveSession;
use super::config::ReconnectConfig;
use super::error::ReconnectError;
use super::limiter::FailureLimiter;
use super::manager::SessionManager;
use super::observe::{LifecycleEvent, Observers};
use crate::ids::SessionId;
use crate::session::{DisconnectReason, SessionRecord};
use crate::store::TokenStore;
use crate::token::{IssuedToken, Redemption, Refusal, TokenHash, TokenSigner};

/// A successful reconnect.
pub struct Reconnected {
    pub session: Arc<ActiveSession>,
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

/// Reconnect tokens of sessions: issued to a session's holder or an admin,
/// redeemed by a client that lost its session.
pub struct Reclaim {
    /// The registry a reclaimed session goes back to.
    sessions: Arc<SessionManager>,
    /// Where a session's current token hash lives.
    tokens: Arc<dyn TokenStore>,
    /// Signs and verifies tokens.
    signer: Arc<TokenSigner>,
    /// Failed attempts per session and per remote address.
    limiter: FailureLimiter,
    /// Where reconnects are announced.
    observers: Observers,
}

impl Reclaim {
    pub(crate) fn new(
        sessions: Arc<SessionManager>,
        tokens: Arc<dyn TokenStore>,
        signer: Arc<TokenSigner>,
        config: &ReconnectConfig,
        observers: Observers,
    ) -> Self {
        Reclaim {
            sessions,
            tokens,
            signer,
            limiter: FailureLimiter::new(config.max_failures, config.failure_window),
            observers,
        }
    }

    /// The session's record as far as reconnection is concerned: live if
    /// active, else from the store, refused if it may not be reclaimed.
    async fn reclaimable(
        &self,
        id: SessionId,
    ) -> Result<(SessionRecord, Option<Arc<ActiveSession>>), ReconnectError> {
        if let Some(live) = self.sessions.active(id) {
            return Ok((live.record(), Some(live)));
        }
        let record = self
            .sessions
            .session(id)
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
            .issue(id, record.client.principal.as_deref(), self.sessions.now());
        if !self.tokens.set_reconnect_token(id, token.grant).await? {
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
        let now = self.sessions.now();
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
        let now = self.sessions.now();
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
            .tokens
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
        let count = self
            .sessions
            .redeem(redemption)
            .await?
            // Someone redeemed or replaced the token since we read it.
            .ok_or(Refusal::Replayed)?;

        let session = match live {
            Some(live) => {
                live.set_reconnect_count(count);
                self.sessions.touch(&live);
                live
            }
            None => self.sessions.revive(record, count),
        };
        tracing::info!(session = %id.short(), reconnect_count = count, "session reconnected");
        self.observers.emit(LifecycleEvent::Reconnected(id, count));
        Ok(Reconnected {
            session,
            reconnect_count: count,
            token: next,
        })
    }
}
