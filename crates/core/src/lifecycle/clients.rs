//! Stateless (2026-07-28) clients have no session; for monitoring, their
//! traffic is attributed to a client key (principal + clientInfo).

use dashmap::DashMap;
use serde::Serialize;

use crate::clock::Timestamp;
use crate::session::ClientIdentity;

/// What is known of one stateless client.
#[derive(Debug, Clone, Serialize)]
pub struct ClientActivity {
    pub client_key: String,
    #[serde(flatten)]
    pub identity: ClientIdentity,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub request_count: u64,
}

#[derive(Default)]
pub(crate) struct Clients {
    by_key: DashMap<String, ClientActivity>,
}

impl Clients {
    pub(crate) fn touch(
        &self,
        key: &str,
        now: Timestamp,
        identity: impl FnOnce() -> ClientIdentity,
    ) {
        if let Some(mut c) = self.by_key.get_mut(key) {
            c.last_seen = c.last_seen.max(now);
            c.request_count += 1;
            return;
        }
        self.by_key
            .entry(key.to_string())
            .and_modify(|c| {
                c.last_seen = c.last_seen.max(now);
                c.request_count += 1;
            })
            .or_insert_with(|| ClientActivity {
                client_key: key.to_string(),
                identity: identity(),
                first_seen: now,
                last_seen: now,
                request_count: 1,
            });
    }

    /// Clients seen since `since`, most recent first; older ones are forgotten.
    pub(crate) fn list(&self, since: Timestamp) -> Vec<ClientActivity> {
        self.by_key.retain(|_, c| c.last_seen >= since);
        let mut all: Vec<_> = self.by_key.iter().map(|c| c.clone()).collect();
        all.sort_by_key(|c| std::cmp::Reverse(c.last_seen));
        all
    }
}
