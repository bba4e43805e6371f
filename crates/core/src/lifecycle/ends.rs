//! The end-of-session notification: the one way the rest of the system
//! hears that a session left this process, whichever way it left — DELETE,
//! admin terminate, idle timeout, an error, or graceful shutdown.
//!
//! Subscribers are given at assembly ([`super::Lifecycle::start`]) and are
//! called synchronously on the end path, once per session departure: the
//! registry's removal decides which end path reports it, so two ends racing
//! for one session are heard once. Nothing is queued, so nothing can be
//! dropped. A subscriber must be quick and must not block (it runs on the
//! ending request's task, or on the reaper for timeouts); work that takes
//! longer it hands to a task of its own.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::clock::Timestamp;
use crate::ids::SessionId;
use crate::session::DisconnectReason;

/// How a session left this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndKind {
    /// It ended, for this reason. The end is durable when DELETE, admin
    /// terminate or an error report it; a timeout's is written behind.
    Ended(DisconnectReason),
    /// The process let go of it at graceful shutdown: it is still active in
    /// the store and resumable after the next start.
    Unloaded,
}

/// A session that left this process's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEnded {
    pub session_id: SessionId,
    pub kind: EndKind,
    /// When it left, by the lifecycle's clock.
    pub at: Timestamp,
}

/// Hears of every session that leaves the registry, exactly once per
/// departure. Closures `Fn(&SessionEnded)` are subscribers too.
pub trait EndSubscriber: Send + Sync + 'static {
    fn session_ended(&self, ended: &SessionEnded);
}

impl<F> EndSubscriber for F
where
    F: Fn(&SessionEnded) + Send + Sync + 'static,
{
    fn session_ended(&self, ended: &SessionEnded) {
        self(ended)
    }
}

/// The subscribers, fixed when the lifecycle starts.
pub(crate) struct Ends {
    /// Called in order, every one for every departure.
    subscribers: Box<[Arc<dyn EndSubscriber>]>,
}

impl Ends {
    pub(crate) fn new(subscribers: Vec<Arc<dyn EndSubscriber>>) -> Self {
        Ends {
            subscribers: subscribers.into(),
        }
    }

    /// Tells every subscriber. One that panics is logged and skipped: it
    /// must not keep the others from hearing, nor take the reaper down.
    pub(crate) fn notify(&self, ended: SessionEnded) {
        for subscriber in self.subscribers.iter() {
            if catch_unwind(AssertUnwindSafe(|| subscriber.session_ended(&ended))).is_err() {
                tracing::error!(session = %ended.session_id.short(), "an end-of-session subscriber panicked");
            }
        }
    }
}
