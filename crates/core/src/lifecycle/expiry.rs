//! Deadline-ordered expiry. Each active session has one entry in a min-heap
//! keyed by the deadline it had when the entry was pushed. Touching a session
//! only moves its `last_activity`; when an entry comes due the reaper checks
//! the real deadline and pushes the entry back if the session was touched.
//! So the request path never takes the heap's lock, and the reaper wakes only
//! for sessions that may really be due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::clock::Timestamp;
use crate::ids::SessionId;

#[derive(Default)]
pub(crate) struct Deadlines {
    heap: Mutex<BinaryHeap<Reverse<(Timestamp, SessionId)>>>,
    /// Wakes the reaper when an entry earlier than all others arrives.
    pub(crate) changed: Notify,
}

impl Deadlines {
    pub(crate) fn push(&self, deadline: Timestamp, id: SessionId) {
        let mut heap = self.heap.lock().expect("deadline heap poisoned");
        let earliest = heap.peek().is_none_or(|Reverse((d, _))| deadline < *d);
        heap.push(Reverse((deadline, id)));
        drop(heap);
        if earliest {
            self.changed.notify_one();
        }
    }

    pub(crate) fn next(&self) -> Option<Timestamp> {
        let heap = self.heap.lock().expect("deadline heap poisoned");
        heap.peek().map(|Reverse((d, _))| *d)
    }

    /// Removes and returns every entry due at `now`.
    pub(crate) fn pop_due(&self, now: Timestamp) -> Vec<SessionId> {
        let mut heap = self.heap.lock().expect("deadline heap poisoned");
        let mut due = Vec::new();
        while let Some(Reverse((deadline, id))) = heap.peek() {
            if *deadline > now {
                break;
            }
            due.push(*id);
            heap.pop();
        }
        due
    }
}
