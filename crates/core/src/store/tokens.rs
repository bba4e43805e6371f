//! The reconnect-token port: a session's current token (as a hash), the
//! one used last, and the compare-and-swap that redeems one.

use async_trait::async_trait;

use super::error::StoreResult;
use crate::ids::SessionId;
use crate::token::{ReconnectState, Redemption, TokenGrant};

/// Durable reconnect tokens, kept on their sessions' rows.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Replaces a session's reconnect token; false if there is no such session.
    async fn set_reconnect_token(&self, id: SessionId, grant: TokenGrant) -> StoreResult<bool>;

    /// A session's reconnect fields, if the session exists.
    async fn reconnect_state(&self, id: SessionId) -> StoreResult<Option<ReconnectState>>;

    /// Applies one use of a token if it is still the session's current one:
    /// installs the next token, remembers the used one, counts the
    /// reconnect and, for a disconnected session, makes it active again.
    /// Returns the new reconnect count, or `None` if the token was no longer
    /// current (someone else used or replaced it first).
    async fn redeem_reconnect_token(&self, r: &Redemption) -> StoreResult<Option<u64>>;
}
