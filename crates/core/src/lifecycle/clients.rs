//! Stateless (2026-07-28) clients have no session; for monitoring, their
//! traffic is attributed to a client key (principal + clientInfo). The table
//! holds at most a configured number of clients: a new one past it evicts
//! the least recently seen, so clients that make up a new identity per
//! request cannot grow it.

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

pub(crate) struct Clients {
    by_key: DashMap<String, ClientActivity>,
    capacity: usize,
}

impl Clients {
    pub(crate) fn new(capacity: usize) -> Self {
        Clients {
            by_key: DashMap::new(),
            capacity: capacity.max(1),
        }
    }

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
        // Only a client not yet known pays for the scan, and only at capacity.
        while self.by_key.len() >= self.capacity {
            let Some(oldest) = self
                .by_key
                .iter()
                .min_by_key(|c| c.last_seen)
                .map(|c| c.key().clone())
            else {
                break;
            };
            if self.by_key.remove(&oldest).is_some() {
                metrics::counter!("sessiongate_client_evictions_total", "table" => "clients")
                    .increment(1);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn identity() -> ClientIdentity {
        ClientIdentity {
            client_type: "Unknown".into(),
            client_name: None,
            client_version: None,
            client_capabilities: serde_json::json!({}),
            protocol_version: "2026-07-28".into(),
            principal: None,
            remote_addr: None,
            user_agent: None,
        }
    }

    #[test]
    fn past_capacity_the_least_recently_seen_client_is_forgotten() {
        let clients = Clients::new(2);
        let t0 = Timestamp::from_millis(1_000_000);
        let at = |s| t0.saturating_add(Duration::from_secs(s));
        let every = Duration::from_secs(1);
        clients.touch("a", at(0), every, identity);
        clients.touch("b", at(1), every, identity);
        clients.touch("a", at(2), every, identity);
        clients.touch("c", at(3), every, identity);
        let keys: Vec<_> = clients.list(t0).into_iter().map(|c| c.client_key).collect();
        assert_eq!(keys, ["c", "a"]);
    }
}
