//! Tells clients when the catalog changes, and when their tasks do. Each
//! list that changed is announced with its `notifications/…/list_changed`,
//! and each resource update with `notifications/resources/updated`: on the
//! standalone GET stream of every session (2025-03-26 .. 2025-11-25; an
//! update only to the sessions subscribed to the resource, unless they are
//! told another way — see [`ResourceUpdate`]), where it is
//! numbered and logged like any message of the stream, and on every
//! `subscriptions/listen` stream (2026-07-28) whose filter wants it; a
//! list changed for one stateless client alone, only on that client's. A
//! session without a stream open reads the lists again when it next asks.
//! A task's status change, heard on the lifecycle's broadcast, goes to the
//! listen streams of its owner that name it (`notifications/tasks`).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use sessiongate_core::lifecycle::{LifecycleEvent, Tasks};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::jsonrpc;
use crate::listen::{Change, Listeners};
use crate::peers::Peers;
use crate::service::catalog::{LiveCatalog, ResourceUpdate};
use crate::tasks;

/// Follows `catalog` for as long as it exists, telling `peers` and `listeners`.
pub(super) fn announce(catalog: &LiveCatalog, peers: Peers, listeners: Listeners) {
    let mut changes = catalog.subscribe();
    let mut updates = catalog.updates();
    let mut client_lists = catalog.client_lists();
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
                    Ok(ResourceUpdate { uri, sessions }) => {
                        if sessions {
                            let message = jsonrpc::notification_bytes(
                                "notifications/resources/updated",
                                Some(&json!({ "uri": &*uri })),
                            );
                            peers.send_to_subscribers(&uri, Bytes::from(message));
                        }
                        listeners.publish(&Change::ResourceUpdated(uri));
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "resource updates were missed: announcing them fell behind");
                    }
                    Err(RecvError::Closed) => return,
                },
                changed = client_lists.recv() => match changed {
                    Ok((client, list)) => listeners.publish(&Change::ClientList(client, list)),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a client's list changes were missed: announcing them fell behind");
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
}

/// Follows the lifecycle's `events` for as long as they come, telling
/// `listeners` of each task's status change. The broadcast never waits for
/// this, nor this for a stream (a stream too far behind is ended); if this
/// falls behind and misses changes, every stream naming tasks is told how
/// they stand now instead. Holds the tasks weakly: the events end with the
/// lifecycle.
pub(super) fn announce_tasks(
    mut events: broadcast::Receiver<LifecycleEvent>,
    tasks: &Arc<Tasks>,
    listeners: Listeners,
) {
    let tasks = Arc::downgrade(tasks);
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(LifecycleEvent::TaskChanged(view)) => listeners.publish(&Change::Task(view)),
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "task changes were missed: telling listen streams how their tasks stand"
                    );
                    let Some(tasks) = tasks.upgrade() else {
                        return;
                    };
                    for (stream, owner, ids) in listeners.task_streams() {
                        match tasks::views(&tasks, &owner, &ids).await {
                            Ok(views) => listeners.catch_up(stream, &views),
                            Err(e) => {
                                tracing::warn!(error = %e.message, "reading tasks for a listen stream failed")
                            }
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}
