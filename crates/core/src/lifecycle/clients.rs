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
    /// When observers were last told of this client's activity.
    #[serde(skip)]
    pub(crate) announced_at: Option<Timestamp>,
}

#[derive(Default)]
pub(crate) struct Clients {
    by_key: DashMap<String, ClientActivity>,
}

impl Clients {
    /// Records a request of a client. Returns true when observers should
    /// hear of it: at most once per client per `every`.
    pub(crate) fn touch(
        &self,
        key: &str,
        now: Timestamp,
        every: std::time::Duration,
        identity: impl FnOnce() -> ClientIdentity,
    ) -> bool {
        let announce = |c: &mut ClientActivity| {
            let due = c.announced_at.is_none_or(|at| now.since(at) >= every);
            if due {
                c.announced_at = Some(now);
            }
            due
        };
        if let Some(mut c) = self.by_key.get_mut(key) {
            c.last_seen = c.last_seen.max(now);
            c.request_count += 1;
            return announce(&mut c);
        }
        let mut entry = self
            .by_key
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
                announced_at: None,
            });
        announce(&mut entry)
    }

    pub(crate) fn get(&self, key: &str) -> Option<ClientActivity> {
        self.by_key.get(key).map(|c| c.clone())
    }

    /// Clients seen since `since`, most recent first; older ones are forgotten.
    pub(crate) fn list(&self, since: Timestamp) -> Vec<ClientActivity> {
        self.by_key.retain(|_, c| c.last_seen >= since);
        let mut all: Vec<_> = self.by_key.iter().map(|c| c.clone()).collect();
        all.sort_by_key(|c| std::cmp::Reverse(c.last_seen));
        all
    }
}
