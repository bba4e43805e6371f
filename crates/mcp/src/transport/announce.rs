//! Tells clients when the catalog changes: each list that changed is
//! announced with its `notifications/…/list_changed` on every session's
//! standalone GET stream (2025-03-26 .. 2025-11-25), where it is numbered
//! and logged like any message of the stream. A session without one open
//! reads the lists again when it next asks. 2026-07-28 clients would be
//! told on a `subscriptions/listen` stream, which this server does not
//! offer (see [`Dispatcher::capabilities`](crate::dispatch::Dispatcher::capabilities)).

use bytes::Bytes;
use serde_json::Value;

use crate::jsonrpc;
use crate::peers::Peers;
use crate::service::catalog::LiveCatalog;

/// Follows `catalog` for as long as it exists, telling `peers`.
pub(super) fn announce(catalog: &LiveCatalog, peers: Peers) {
    let mut changes = catalog.subscribe();
    tokio::spawn(async move {
        let mut seen = changes.borrow_and_update().clone();
        while changes.changed().await.is_ok() {
            let now = changes.borrow_and_update().clone();
            for list in seen.changes(&now) {
                let message = jsonrpc::notification_bytes::<Value>(list.notification(), None);
                peers.send_on_streams(Bytes::from(message));
            }
            seen = now;
        }
    });
}
