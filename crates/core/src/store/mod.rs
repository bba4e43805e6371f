//! The store ports: what the domain needs from durable storage, one trait
//! per concern, each with the queries and reports it answers beside it.
//! `sessiongate-store` implements every port on SQLite and PostgreSQL, and
//! one contract test suite holds both to the same behaviour.
//!
//! A consumer holds only the port it uses: [`SessionStore`] (session rows),
//! [`RequestLogStore`] (the request log), [`AnalyticsStore`] (aggregates over
//! both), [`TokenStore`] (reconnect tokens), [`EventLogStore`] (stream
//! events for resumption), [`TaskStore`] (tasks) or [`UpstreamMappingStore`]
//! (the gateway's upstream sessions). [`Store`] is all of them at once, for
//! assembly.

mod analytics;
mod error;
mod event_log;
mod request_log;
mod sessions;
mod tasks;
mod tokens;
mod upstreams;

pub use analytics::{
    AnalyticsStore, ClientRequests, Latency, RequestBucket, RequestTotals, SessionFlow, Window,
};
pub use error::{StoreError, StoreResult};
pub use event_log::EventLogStore;
pub use request_log::RequestLogStore;
pub use sessions::{
    ConnectionBucket, DisconnectStats, SessionPage, SessionQuery, SessionStore, StatusCounts,
};
pub use tasks::{PrunedTask, TaskCounts, TaskPage, TaskQuery, TaskStore};
pub use tokens::TokenStore;
pub use upstreams::UpstreamMappingStore;

/// One database behind every port.
pub trait Store:
    SessionStore
    + RequestLogStore
    + AnalyticsStore
    + TokenStore
    + EventLogStore
    + TaskStore
    + UpstreamMappingStore
{
    /// Which backend this is, for logs and the health endpoint.
    fn backend(&self) -> &'static str;
}
