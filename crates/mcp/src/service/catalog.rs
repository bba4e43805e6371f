//! What a service offers, as one value that can change at run time: the
//! lists clients read with `tools/list`, `prompts/list`, `resources/list`
//! and `resources/templates/list`, and a signal each time they change, so
//! connected clients can be told which list to read again; the news of a
//! resource whose contents changed, for the clients subscribed to it; and
//! the lists that changed for one stateless client alone (a gateway's
//! pooled upstream session that changed its own); and, the other way, the
//! resources clients are subscribed to, for a service that must ask its
//! own server for their updates.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use rmcp::model::Tool;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

/// Resource updates (or one client's list changes) a subscriber may fall
/// behind by before it misses some.
const UPDATES_QUEUED: usize = 256;

/// The lists of a catalog, in the order they are offered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub tools: Vec<Tool>,
    /// `prompts/list` entries; `name` identifies each.
    pub prompts: Vec<Value>,
    /// `resources/list` entries; `uri` identifies each.
    pub resources: Vec<Value>,
    /// `resources/templates/list` entries.
    pub templates: Vec<Value>,
}

/// A list clients can be told has changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    /// Resources and resource templates, which MCP announces together.
    Resources,
}

impl ListKind {
    /// The notification that tells a client to read this list again.
    pub fn notification(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Prompts => "notifications/prompts/list_changed",
            ListKind::Resources => "notifications/resources/list_changed",
        }
    }
}

impl Catalog {
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }

    pub fn prompt(&self, name: &str) -> Option<&Value> {
        self.prompts.iter().find(|p| p["name"] == name)
    }

    pub fn resource(&self, uri: &str) -> Option<&Value> {
        self.resources.iter().find(|r| r["uri"] == uri)
    }

    /// The lists that differ in `newer`.
    pub fn changes(&self, newer: &Catalog) -> Vec<ListKind> {
        let mut changed = Vec::new();
        if self.tools != newer.tools {
            changed.push(ListKind::Tools);
        }
        if self.prompts != newer.prompts {
            changed.push(ListKind::Prompts);
        }
        if self.resources != newer.resources || self.templates != newer.templates {
            changed.push(ListKind::Resources);
        }
        changed
    }
}

/// A catalog that can change: its current value, and a receiver per
/// subscriber that wakes when it does; beside it, the URIs of resources
/// whose contents changed, as they are announced.
#[derive(Debug)]
pub struct LiveCatalog {
    lists: watch::Sender<Arc<Catalog>>,
    updates: broadcast::Sender<ResourceUpdate>,
    client_lists: broadcast::Sender<(Arc<str>, ListKind)>,
    watched: Arc<watch::Sender<Watched>>,
}

/// News that the contents of a resource changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceUpdate {
    pub uri: Arc<str>,
    /// Whether the sessions subscribed hear of it, besides the listen
    /// streams that name it. Not when the sessions are told another way: a
    /// gateway's upstream that has sessions tells each on its own.
    pub sessions: bool,
}

/// The resources clients are subscribed to, each with the number of
/// subscriptions (a session's, a listen stream's) that hold it.
pub type Watched = BTreeMap<Arc<str>, usize>;

/// One subscription to a resource, counted in its catalog's
/// [`watched_resources`](LiveCatalog::watched_resources) until dropped.
#[derive(Debug)]
pub struct ResourceWatch {
    watched: Weak<watch::Sender<Watched>>,
    uri: Arc<str>,
}

impl Drop for ResourceWatch {
    fn drop(&mut self) {
        let Some(watched) = self.watched.upgrade() else {
            return;
        };
        watched.send_if_modified(|watched| match watched.get_mut(&self.uri) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                watched.remove(&self.uri);
                true
            }
            None => false,
        });
    }
}

impl LiveCatalog {
    pub fn new(catalog: Catalog) -> Self {
        LiveCatalog {
            lists: watch::Sender::new(Arc::new(catalog)),
            updates: broadcast::Sender::new(UPDATES_QUEUED),
            client_lists: broadcast::Sender::new(UPDATES_QUEUED),
            watched: Arc::new(watch::Sender::new(Watched::new())),
        }
    }

    pub fn current(&self) -> Arc<Catalog> {
        self.lists.borrow().clone()
    }

    /// Whether the current catalog has a tool of this name.
    pub fn has_tool(&self, name: &str) -> bool {
        self.lists.borrow().tool(name).is_some()
    }

    /// Replaces the catalog. Subscribers hear of it only if it differs.
    pub fn set(&self, catalog: Catalog) {
        self.lists.send_if_modified(|current| {
            let changed = **current != catalog;
            if changed {
                *current = Arc::new(catalog);
            }
            changed
        });
    }

    /// A receiver that wakes at each change from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Catalog>> {
        self.lists.subscribe()
    }

    /// Announces that the contents of the resource at `uri` changed (a
    /// listed one or one of a template's), for the clients subscribed to it.
    pub fn resource_updated(&self, uri: &str) {
        self.announce_update(ResourceUpdate {
            uri: uri.into(),
            sessions: true,
        });
    }

    /// Announces a resource update as `update` says whom to.
    pub fn announce_update(&self, update: ResourceUpdate) {
        // No receiver means nobody can be subscribed.
        let _ = self.updates.send(update);
    }

    /// A receiver of the resource updates announced from now on. One that
    /// falls [`UPDATES_QUEUED`] behind misses the oldest.
    pub fn updates(&self) -> broadcast::Receiver<ResourceUpdate> {
        self.updates.subscribe()
    }

    /// Announces that `lists` changed for the stateless client `client`
    /// alone (see `RequestContext::stateless_client`).
    pub fn lists_changed_for(&self, client: &Arc<str>, lists: &[ListKind]) {
        for list in lists {
            // No receiver means nobody listens.
            let _ = self.client_lists.send((client.clone(), *list));
        }
    }

    /// A receiver of the lists changed for one client, announced from now
    /// on. One that falls [`UPDATES_QUEUED`] behind misses the oldest.
    pub fn client_lists(&self) -> broadcast::Receiver<(Arc<str>, ListKind)> {
        self.client_lists.subscribe()
    }

    /// Counts a client's subscription to the resource at `uri` until the
    /// returned watch is dropped.
    pub fn watch_resource(&self, uri: &str) -> ResourceWatch {
        let uri: Arc<str> = uri.into();
        self.watched.send_if_modified(|watched| {
            let count = watched.entry(uri.clone()).or_default();
            *count += 1;
            *count == 1
        });
        ResourceWatch {
            watched: Arc::downgrade(&self.watched),
            uri,
        }
    }

    /// The resources clients are subscribed to; the receiver wakes when
    /// one is first subscribed to or last unsubscribed from.
    pub fn watched_resources(&self) -> watch::Receiver<Watched> {
        self.watched.subscribe()
    }
}

impl Default for LiveCatalog {
    fn default() -> Self {
        LiveCatalog::new(Catalog::default())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(name: &'static str) -> Tool {
        Tool::new(name, "", Arc::new(rmcp::model::JsonObject::new()))
    }

    #[tokio::test]
    async fn subscribers_hear_of_changes_only() {
        let live = LiveCatalog::default();
        let mut changes = live.subscribe();
        live.set(Catalog::default());
        assert!(!changes.has_changed().unwrap(), "the same catalog again");
        live.set(Catalog {
            tools: vec![tool("a")],
            ..Catalog::default()
        });
        changes.changed().await.unwrap();
        assert!(live.has_tool("a") && !live.has_tool("b"));
        assert_eq!(
            Catalog::default().changes(&changes.borrow_and_update()),
            [ListKind::Tools]
        );
    }

    #[tokio::test]
    async fn resource_updates_reach_the_subscribers_of_the_time() {
        let live = LiveCatalog::default();
        live.resource_updated("x://before");
        let mut updates = live.updates();
        live.resource_updated("x://1");
        assert_eq!(&*updates.recv().await.unwrap().uri, "x://1");
        assert!(
            updates.try_recv().is_err(),
            "nothing announced before it subscribed"
        );
    }

    #[test]
    fn templates_count_as_resources() {
        let newer = Catalog {
            templates: vec![json!({ "uriTemplate": "x://{id}" })],
            prompts: vec![json!({ "name": "p" })],
            ..Catalog::default()
        };
        assert_eq!(
            Catalog::default().changes(&newer),
            [ListKind::Prompts, ListKind::Resources]
        );
        assert!(newer.prompt("p").is_some() && newer.resource("x://1").is_none());
    }

    #[test]
    fn a_resource_is_watched_while_any_subscription_holds_it() {
        let live = LiveCatalog::default();
        let mut watched = live.watched_resources();
        let keys = |w: &watch::Receiver<Watched>| -> Vec<String> {
            w.borrow().keys().map(|k| k.to_string()).collect()
        };
        let first = live.watch_resource("x://1");
        assert!(watched.has_changed().unwrap(), "first subscription");
        watched.mark_unchanged();
        let second = live.watch_resource("x://1");
        assert!(!watched.has_changed().unwrap(), "the same resource again");
        drop(first);
        assert!(!watched.has_changed().unwrap(), "one subscription holds it");
        assert_eq!(keys(&watched), ["x://1"]);
        drop(second);
        assert!(watched.has_changed().unwrap(), "the last one went");
        assert!(keys(&watched).is_empty());
    }
}
