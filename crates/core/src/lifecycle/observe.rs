//! Live observation of the lifecycle (sessions, stateless clients and
//! tasks), for displays — the dashboard's live stream and `watch` — and
//! for the task status notifications of clients' listen streams. A
//! broadcast that may drop events by design — a receiver that falls
//! behind loses the oldest ones and is told so (it resynchronizes from a
//! snapshot) — so sessions and tasks are never slowed down by a slow
//! observer. Nothing that must hear every end listens here: cleanup
//! subscribes to the end-of-session notification ([`super::ends`]).

use std::sync::Arc;

use tokio::sync::broadcast;

use super::tasks::TaskView;
use crate::ids::SessionId;
use crate::session::SessionRecord;
use crate::task::TaskRecord;

/// Events a receiver may fall behind by before it loses the oldest.
const CAPACITY: usize = 1024;

/// Something that happened to a session, for live observers.
#[derive(Debug, Clone, PartialEq)]
pub enum LifecycleEvent {
    /// The new session's record: carried, so observers can describe it even
    /// if it has already ended by the time they look.
    Created(Box<SessionRecord>),
    /// Sessions active and touched since the last activity flush: one event
    /// per flush, so a busy flush takes one slot of an observer's queue
    /// instead of one per session.
    Updated(Arc<[SessionId]>),
    /// The session's final record.
    Ended(Box<SessionRecord>),
    /// Reclaimed with a reconnect token; carries the new reconnect count.
    Reconnected(SessionId, u64),
    /// A stateless (2026-07-28) client made requests; by client key.
    ClientActive(String),
    /// A task was created; its record as created.
    TaskCreated(Box<TaskRecord>),
    /// A task's status changed; the task as the change left it, as its
    /// owner would see it (with its status message — a failed task's
    /// reason — and its result, error or pending requests).
    TaskChanged(Arc<TaskView>),
}

/// The sending side, shared by the manager and the services that report.
#[derive(Clone)]
pub(crate) struct Observers(broadcast::Sender<LifecycleEvent>);

impl Default for Observers {
    fn default() -> Self {
        Observers(broadcast::channel(CAPACITY).0)
    }
}

impl Observers {
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LifecycleEvent> {
        self.0.subscribe()
    }

    /// Whether anyone listens: events that cost something to build are
    /// built only then.
    pub(crate) fn listening(&self) -> bool {
        self.0.receiver_count() > 0
    }

    pub(crate) fn emit(&self, event: LifecycleEvent) {
        // No observers is fine.
        let _ = self.0.send(event);
    }
}
