//! The upstream mapping port: per client session and upstream, the upstream
//! session the gateway holds ([`UpstreamMapping`]), so a client goes on
//! with its session after the gateway restarts.

use async_trait::async_trait;

use super::error::StoreResult;
use crate::ids::SessionId;
use crate::upstream::{UpstreamMapping, UpstreamName};

#[async_trait]
pub trait UpstreamMappingStore: Send + Sync + 'static {
    /// Inserts or replaces the mapping of `(session_id, upstream)`.
    async fn save_upstream_mapping(&self, mapping: &UpstreamMapping) -> StoreResult<()>;

    /// The mapping of `(session_id, upstream)`, if one is stored.
    async fn upstream_mapping(
        &self,
        session_id: SessionId,
        upstream: &UpstreamName,
    ) -> StoreResult<Option<UpstreamMapping>>;

    /// Forgets every mapping of a session (it ended). Returns how many.
    async fn delete_upstream_mappings(&self, session_id: SessionId) -> StoreResult<u64>;

    /// How many client sessions are mapped to each upstream.
    async fn upstream_mapping_counts(&self) -> StoreResult<Vec<(UpstreamName, u64)>>;
}
