//! Who a stateless (2026-07-28) request comes from. Every such request
//! repeats its client's `clientInfo` and capabilities in `_meta`; the
//! identity built from them (key, detected client type, address, user
//! agent) is remembered per `clientInfo` text, so a client's next request
//! with the same `_meta` reuses it instead of parsing and building it again.
//! It holds at most a configured number of identities; a new one past it
//! evicts the least recently used, so clients that make up a new
//! `clientInfo` per request cannot grow it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use sessiongate_core::lifecycle::client_key;
use sessiongate_core::session::ClientIdentity;

use crate::client_info::{self, ClientInfo, Origin};

/// What a request says about its client, as sent.
pub(crate) struct Announced<'a> {
    /// `_meta["io.modelcontextprotocol/clientInfo"]`, raw JSON.
    pub info: Option<&'a str>,
    /// `_meta["io.modelcontextprotocol/clientCapabilities"]`, raw JSON.
    pub capabilities: &'a str,
    pub protocol_version: &'a str,
    pub remote: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

/// A client's attribution key and identity.
#[derive(Clone)]
pub(crate) struct Known {
    pub key: Arc<str>,
    pub identity: Arc<ClientIdentity>,
}

struct Entry {
    capabilities: Box<str>,
    protocol_version: Box<str>,
    remote: Option<IpAddr>,
    user_agent: Option<Box<str>>,
    known: Known,
    /// The cache's use counter when this entry was last used.
    used: AtomicU64,
}

impl Entry {
    /// Whether `a` would build this entry's identity: everything `build`
    /// reads besides the `clientInfo` the entry is found by.
    fn matches(&self, a: &Announced<'_>) -> bool {
        *self.capabilities == *a.capabilities
            && *self.protocol_version == *a.protocol_version
            && self.remote == a.remote
            && self.user_agent.as_deref() == a.user_agent
    }
}

/// Identities of stateless clients by the `clientInfo` text they send.
pub(crate) struct IdentityCache {
    by_info: DashMap<Box<str>, Entry>,
    capacity: usize,
    uses: AtomicU64,
}

impl IdentityCache {
    pub(crate) fn new(capacity: usize) -> Self {
        IdentityCache {
            by_info: DashMap::new(),
            capacity: capacity.max(1),
            uses: AtomicU64::new(0),
        }
    }

    /// The key and identity of the client a request announces. A
    /// `clientInfo` that is not an object with string fields counts as
    /// unnamed, as does none.
    pub(crate) fn identify(&self, a: &Announced<'_>) -> Known {
        let info = a.info.unwrap_or("");
        let now = self.uses.fetch_add(1, Ordering::Relaxed);
        if let Some(entry) = self.by_info.get(info) {
            if entry.matches(a) {
                entry.used.store(now, Ordering::Relaxed);
                return entry.known.clone();
            }
        }
        let known = build(a);
        self.by_info.insert(
            info.into(),
            Entry {
                capabilities: a.capabilities.into(),
                protocol_version: a.protocol_version.into(),
                remote: a.remote,
                user_agent: a.user_agent.map(Into::into),
                known: known.clone(),
                used: AtomicU64::new(now),
            },
        );
        self.trim(info);
        known
    }

    /// Evicts the least recently used identities past capacity, sparing
    /// `info`. After the insert, not before: new identities arriving
    /// together would each find room before any of them is in. Only a
    /// cache over capacity — a new identity at capacity — pays for the scan.
    fn trim(&self, info: &str) {
        while self.by_info.len() > self.capacity {
            let Some(oldest) = self
                .by_info
                .iter()
                .filter(|e| e.key().as_ref() != info)
                .min_by_key(|e| e.used.load(Ordering::Relaxed))
                .map(|e| e.key().clone())
            else {
                break;
            };
            if self.by_info.remove(&oldest).is_some() {
                metrics::counter!("sessiongate_client_evictions_total", "table" => "identities")
                    .increment(1);
            }
        }
    }
}

fn build(a: &Announced<'_>) -> Known {
    let info: Option<ClientInfo> = a.info.and_then(|raw| serde_json::from_str(raw).ok());
    let identity: ClientIdentity = client_info::identity(
        info.as_ref(),
        // Raw JSON the request parser already checked.
        serde_json::from_str(a.capabilities).unwrap_or_default(),
        a.protocol_version,
        Origin {
            remote: a.remote,
            user_agent: a.user_agent,
        },
    );
    Known {
        key: client_key(
            identity.client_name.as_deref(),
            identity.client_version.as_deref(),
        )
        .into(),
        identity: Arc::new(identity),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced<'a>(info: &'a str, capabilities: &'a str, ua: &'a str) -> Announced<'a> {
        Announced {
            info: Some(info),
            capabilities,
            protocol_version: "2026-07-28",
            remote: Some(IpAddr::from([127, 0, 0, 1])),
            user_agent: Some(ua),
        }
    }

    #[test]
    fn a_client_repeating_its_meta_gets_the_same_identity() {
        let cache = IdentityCache::new(16);
        let info = r#"{"name":"claude-code","version":"2.1"}"#;
        let first = cache.identify(&announced(info, "{}", "ua"));
        assert_eq!(&*first.key, "anonymous/claude-code/2.1");
        assert_eq!(first.identity.client_type, "Claude Code");
        assert_eq!(first.identity.remote_addr.as_deref(), Some("127.0.0.1"));
        let again = cache.identify(&announced(info, "{}", "ua"));
        assert!(Arc::ptr_eq(&first.identity, &again.identity));
    }

    #[test]
    fn anything_else_announced_differently_builds_a_new_identity() {
        let cache = IdentityCache::new(16);
        let info = r#"{"name":"cursor","version":"1"}"#;
        let first = cache.identify(&announced(info, "{}", "ua"));
        let other_caps = cache.identify(&announced(info, r#"{"sampling":{}}"#, "ua"));
        assert!(!Arc::ptr_eq(&first.identity, &other_caps.identity));
        assert_eq!(
            other_caps.identity.client_capabilities["sampling"],
            serde_json::json!({})
        );
        let other_ua = cache.identify(&announced(info, "{}", "ua2"));
        assert_eq!(other_ua.identity.user_agent.as_deref(), Some("ua2"));
        assert_eq!(other_ua.key, first.key);
    }

    #[test]
    fn past_capacity_the_least_recently_used_identity_is_evicted() {
        let cache = IdentityCache::new(2);
        let a = r#"{"name":"a"}"#;
        let b = r#"{"name":"b"}"#;
        let first_a = cache.identify(&announced(a, "{}", "ua"));
        cache.identify(&announced(b, "{}", "ua"));
        cache.identify(&announced(a, "{}", "ua"));
        cache.identify(&announced(r#"{"name":"c"}"#, "{}", "ua"));
        assert_eq!(cache.by_info.len(), 2);
        assert!(!cache.by_info.contains_key(b));
        let again_a = cache.identify(&announced(a, "{}", "ua"));
        assert!(Arc::ptr_eq(&first_a.identity, &again_a.identity));
    }

    #[test]
    fn unnamed_clients_share_the_unknown_key() {
        let cache = IdentityCache::new(16);
        for info in [None, Some("[1]"), Some(r#"{"name":7}"#)] {
            let a = Announced {
                info,
                ..announced("", "{}", "ua")
            };
            assert_eq!(&*cache.identify(&a).key, "anonymous/unknown/-");
        }
    }
}
