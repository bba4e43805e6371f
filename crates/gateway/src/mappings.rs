//! Upstream mappings kept in memory: for tests, and for an assembly whose
//! store does not keep them (they then last as long as the process).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use sessiongate_core::ids::SessionId;
use sessiongate_core::store::{StoreResult, UpstreamMappingStore};
use sessiongate_core::upstream::{UpstreamMapping, UpstreamName};

type Mappings = HashMap<(SessionId, UpstreamName), UpstreamMapping>;

#[derive(Default)]
pub struct MemoryMappings {
    mappings: Mutex<Mappings>,
}

impl MemoryMappings {
    fn lock(&self) -> MutexGuard<'_, Mappings> {
        self.mappings.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl UpstreamMappingStore for MemoryMappings {
    async fn save_upstream_mapping(&self, mapping: &UpstreamMapping) -> StoreResult<()> {
        self.lock().insert(
            (mapping.session_id, mapping.upstream.clone()),
            mapping.clone(),
        );
        Ok(())
    }

    async fn upstream_mapping(
        &self,
        session_id: SessionId,
        upstream: &UpstreamName,
    ) -> StoreResult<Option<UpstreamMapping>> {
        Ok(self.lock().get(&(session_id, upstream.clone())).cloned())
    }

    async fn delete_upstream_mappings(&self, session_id: SessionId) -> StoreResult<u64> {
        let mut mappings = self.lock();
        let before = mappings.len();
        mappings.retain(|(id, _), _| *id != session_id);
        Ok((before - mappings.len()) as u64)
    }

    async fn upstream_mapping_counts(&self) -> StoreResult<Vec<(UpstreamName, u64)>> {
        let mut counts: HashMap<UpstreamName, u64> = HashMap::new();
        for (_, upstream) in self.lock().keys() {
            *counts.entry(upstream.clone()).or_default() += 1;
        }
        Ok(counts.into_iter().collect())
    }
}
