//! Where the authoritative copy of each active session lives. The manager
//! reaches sessions only through [`Registry`]; [`LocalRegistry`], today's
//! only implementation, holds every active session of the store in this
//! process.
//!
//! The seam is cut for several nodes (see docs/architecture.md, "Registry
//! and several nodes"): taking a session in is a [`Registry::claim`], which
//! a shared registry backs with a compare-and-swap of the session's owner in
//! the store, and a node that misses in [`Registry::get`] can load the
//! session from the store and claim it before it answers "unknown". The
//! lookup of a loaded session stays synchronous and takes no lock beyond a
//! shard's read lock: it is on every request's path.

use std::sync::Arc;

use dashmap::DashMap;

use super::active::ActiveSession;
use crate::ids::SessionId;

/// The active sessions this process serves.
pub trait Registry: Send + Sync + 'static {
    /// The loaded session with this id. No I/O: every request calls it.
    fn get(&self, id: SessionId) -> Option<Arc<ActiveSession>>;

    /// Takes a session in unless one with its id is held already; returns
    /// the one held after the call.
    fn claim(&self, session: Arc<ActiveSession>) -> Arc<ActiveSession>;

    /// Lets go of a session; returns it if it was held. Whoever gets it
    /// back is the one end path that reports it.
    fn release(&self, id: SessionId) -> Option<Arc<ActiveSession>>;

    /// Lets go of a session only if `still` holds for it, checked under the
    /// entry's lock so no touch slips in between.
    fn release_if(
        &self,
        id: SessionId,
        still: &dyn Fn(&ActiveSession) -> bool,
    ) -> Option<Arc<ActiveSession>>;

    /// Lets go of every session; returns them.
    fn release_all(&self) -> Vec<Arc<ActiveSession>>;

    /// How many sessions are held.
    fn count(&self) -> usize;

    /// Visits every session held (in no order), holding one shard's read
    /// lock at a time.
    fn for_each(&self, visit: &mut dyn FnMut(&Arc<ActiveSession>));
}

/// Every active session, in this process: a sharded hash map.
#[derive(Default)]
pub struct LocalRegistry {
    /// Every active session, by id.
    sessions: DashMap<SessionId, Arc<ActiveSession>>,
}

impl Registry for LocalRegistry {
    fn get(&self, id: SessionId) -> Option<Arc<ActiveSession>> {
        self.sessions.get(&id).map(|s| s.clone())
    }

    fn claim(&self, session: Arc<ActiveSession>) -> Arc<ActiveSession> {
        self.sessions.entry(session.id()).or_insert(session).clone()
    }

    fn release(&self, id: SessionId) -> Option<Arc<ActiveSession>> {
        self.sessions.remove(&id).map(|(_, s)| s)
    }

    fn release_if(
        &self,
        id: SessionId,
        still: &dyn Fn(&ActiveSession) -> bool,
    ) -> Option<Arc<ActiveSession>> {
        self.sessions
            .remove_if(&id, |_, s| still(s))
            .map(|(_, s)| s)
    }

    fn release_all(&self) -> Vec<Arc<ActiveSession>> {
        let mut released = Vec::with_capacity(self.sessions.len());
        self.sessions.retain(|_, s| {
            released.push(s.clone());
            false
        });
        released
    }

    fn count(&self) -> usize {
        self.sessions.len()
    }

    fn for_each(&self, visit: &mut dyn FnMut(&Arc<ActiveSession>)) {
        for entry in self.sessions.iter() {
            visit(entry.value());
        }
    }
}
