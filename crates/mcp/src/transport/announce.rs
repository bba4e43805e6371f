//! Tells clients when the catalog changes. Each list that changed is
//! announced with its `notifications/…/list_changed`, and each resource
//! update with `notifications/resources/updated`: on the standalone GET
//! stream of every session (2025-03-26 .. 2025-11-25; an update only to the
//! sessions subscribed to the resource), where it is numbered and logged
//! like any message of the stream, and on every `subscriptions/listen`
//! stream (2026-07-28) whose filter wants it. A session without a stream
//! open reads the lists again when it next asks.

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::jsonrpc;
use crate::listen::{Change, Listeners};
use crate::peers::Peers;
use crate::service::catalog::LiveCatalog;

/// Follows `catalog` for as long as it exists, telling `peers` and `listeners`.
pub(super) fn announce(catalog: &LiveCatalog, peers: Peers, listeners: Listeners) {
    let mut changes = catalog.subscribe();
    let mut updates = catalog.updates();
    tokio::spawn(async move {
        let mut seen = changes.borrow_and_update().clone();
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = changes.borrow_and_update().clone();
                    for list in seen.changes(&now) {
                        let message =
                            jsonrpc::notification_bytes::<Value>(list.notification(), None);
                        peers.send_on_streams(Bytes::from(message));
                        listeners.publish(&Change::List(list));
                    }
                    seen = now;
                }
                update = updates.recv() => match update {
                    Ok(uri) => {
                        let message = jsonrpc::notification_bytes(
                            "notifications/resources/updated",
                            Some(&json!({ "uri": &*uri })),
                        );
                        peers.send_to_subscribers(&uri, Bytes::from(message));
                        listeners.publish(&Change::ResourceUpdated(uri));
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "resource updates were missed: announcing them fell behind");
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
}
