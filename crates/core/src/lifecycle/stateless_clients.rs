//! Stateless (2026-07-28) clients have no session; for monitoring, their
//! traffic is attributed to a client key (principal + clientInfo). The table
//! holds at most a configured number of clients: a new one past it evicts
//! the least recently seen, so clients that make up a new identity per
//! request cannot grow it. At startup the table is refilled from the request
//! log, so a restart loses no client of the health window.

use std::time::Duration;

use dashmap::DashMap;
use serde::Serialize;

use super::config::LifecycleConfig;
use super::observe::{LifecycleEvent, Observers};
use crate::client_kind::detect_client_type;
use crate::clock::{SharedClock, Timestamp};
use crate::session::ClientIdentity;
use crate::store::{AnalyticsStore, ClientRequests, StoreResult, Window};

const ANONYMOUS: &str = "anonymous";
const NO_NAME: &str = "unknown";
const NO_VERSION: &str = "-";

/// The key a stateless client's traffic is attributed to:
/// `anonymous/<clientInfo.name>/<clientInfo.version>`.
pub fn client_key(name: Option<&str>, version: Option<&str>) -> String {
    format!(
        "{ANONYMOUS}/{}/{}",
        name.unwrap_or(NO_NAME),
        version.unwrap_or(NO_VERSION)
    )
}

/// As much of a client's identity as its key tells: what the request log
/// keeps of a client seen before a restart.
fn identity_from_key(key: &str) -> ClientIdentity {
    let rest = key
        .strip_prefix(ANONYMOUS)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(key);
    let (name, version) = rest.rsplit_once('/').unwrap_or((rest, NO_VERSION));
    let name = (name != NO_NAME).then(|| name.to_string());
    ClientIdentity {
        client_type: detect_client_type(name.as_deref()),
        client_name: name,
        client_version: (version != NO_VERSION).then(|| version.to_string()),
        client_capabilities: serde_json::json!({}),
        // Only the stateless revision has clients without sessions.
        protocol_version: "2026-07-28".into(),
        principal: None,
        remote_addr: None,
        user_agent: None,
    }
}

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
    announced_at: Option<Timestamp>,
}

/// The stateless clients seen within the health window.
pub struct StatelessClients {
    /// The clients, by key.
    table: Table,
    /// The time of each request.
    clock: SharedClock,
    /// How often, at most, observers hear of one client's activity.
    announce_every: Duration,
    /// How far back clients are remembered: the health window.
    window: Duration,
    /// Where client activity is announced.
    observers: Observers,
}

impl StatelessClients {
    /// The table as the request log of the health window leaves it.
    pub(crate) async fn load(
        store: &dyn AnalyticsStore,
        clock: SharedClock,
        config: &LifecycleConfig,
        observers: Observers,
    ) -> StoreResult<Self> {
        let now = clock.now();
        let table = Table::new(config.max_stateless_clients);
        table.restore(
            store
                .client_requests(Window {
                    since: now.saturating_sub(config.health_window),
                    until: now.saturating_add(Duration::from_millis(1)),
                })
                .await?,
        );
        Ok(StatelessClients {
            table,
            clock,
            announce_every: config.activity_flush_interval,
            window: config.health_window,
            observers,
        })
    }

    /// Records a request of a stateless client, made `at`; observers hear
    /// of it at most once per client per activity flush interval.
    pub fn touch(&self, key: &str, at: Timestamp, identity: impl FnOnce() -> ClientIdentity) {
        if self.table.touch(key, at, self.announce_every, identity) && self.observers.listening() {
            self.observers
                .emit(LifecycleEvent::ClientActive(key.to_string()));
        }
    }

    /// A client's activity record.
    pub fn get(&self, key: &str) -> Option<ClientActivity> {
        self.table.get(key)
    }

    /// Clients seen within the health window, most recent first.
    pub fn list(&self) -> Vec<ClientActivity> {
        self.table
            .list(self.clock.now().saturating_sub(self.window))
    }
}

/// The clients by key, bounded.
struct Table {
    /// Each client's activity, by client key.
    by_key: DashMap<String, ClientActivity>,
    /// Clients kept at most.
    capacity: usize,
}

impl Table {
    fn new(capacity: usize) -> Self {
        Table {
            by_key: DashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records a request of a client. Returns true when observers should
    /// hear of it: at most once per client per `every`.
    fn touch(
        &self,
        key: &str,
        now: Timestamp,
        every: Duration,
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
        let due = announce(&mut entry);
        drop(entry);
        self.trim(key);
        due
    }

    /// Evicts the least recently seen clients past capacity, sparing `key`.
    /// After the insert, not before: newcomers arriving together would each
    /// find room before any of them is in. Only a table over capacity —
    /// a newcomer at capacity — pays for the scan.
    fn trim(&self, key: &str) {
        while self.by_key.len() > self.capacity {
            let Some(oldest) = self
                .by_key
                .iter()
                .filter(|c| c.key() != key)
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
    }

    /// Refills the table from the request log (most recently seen first,
    /// up to capacity).
    fn restore(&self, mut logged: Vec<ClientRequests>) {
        logged.sort_by_key(|c| std::cmp::Reverse(c.last_seen));
        for c in logged.into_iter().take(self.capacity) {
            self.by_key
                .entry(c.client_key.clone())
                .or_insert_with(|| ClientActivity {
                    identity: identity_from_key(&c.client_key),
                    client_key: c.client_key,
                    first_seen: c.first_seen,
                    last_seen: c.last_seen,
                    request_count: c.requests,
                    announced_at: None,
                });
        }
    }

    fn get(&self, key: &str) -> Option<ClientActivity> {
        self.by_key.get(key).map(|c| c.clone())
    }

    /// Clients seen since `since`, most recent first; older ones are forgotten.
    fn list(&self, since: Timestamp) -> Vec<ClientActivity> {
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
        let clients = Table::new(2);
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

    #[test]
    fn a_restored_client_has_the_identity_its_key_tells() {
        let clients = Table::new(2);
        let t0 = Timestamp::from_millis(1_000_000);
        let logged = |key: &str, last: i64| ClientRequests {
            client_key: key.to_string(),
            requests: 3,
            first_seen: t0,
            last_seen: Timestamp::from_millis(t0.as_millis() + last),
        };
        clients.restore(vec![
            logged(&client_key(Some("cursor-vscode"), Some("1.7/beta")), 5),
            logged(&client_key(None, None), 9),
            logged(&client_key(Some("oldest"), Some("1")), 1),
        ]);
        let all = clients.list(t0);
        let keys: Vec<_> = all.iter().map(|c| c.client_key.as_str()).collect();
        assert_eq!(
            keys,
            ["anonymous/unknown/-", "anonymous/cursor-vscode/1.7/beta"]
        );
        assert_eq!(all[0].identity.client_name, None);
        assert_eq!(all[0].identity.client_version, None);
        let cursor = &all[1].identity;
        assert_eq!(cursor.client_type, "Cursor");
        assert_eq!(cursor.client_name.as_deref(), Some("cursor-vscode/1.7"));
        assert_eq!(cursor.client_version.as_deref(), Some("beta"));
        assert_eq!(all[1].request_count, 3);
    }
}
