//! How the lifecycle's operations fail: creating or ending a session or
//! admitting a request ([`LifecycleError`]), and reconnecting
//! ([`ReconnectError`]).

use std::time::Duration;

use crate::store::StoreError;
use crate::token::Refusal;

/// Failure to create or end a session, or to admit a request.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The request log's queue stayed full: the store is failing or slow.
    #[error("the request log is full; the session store is not keeping up")]
    RequestLogFull,
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
