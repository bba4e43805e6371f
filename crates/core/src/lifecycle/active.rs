//! A session held in memory while it is active. The request path reads and
//! touches it without locks or I/O; the store catches up behind it.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::clock::Timestamp;
use crate::ids::SessionId;
use crate::session::{ClientIdentity, SessionRecord, SessionStatus};

/// An active session.
#[derive(Debug)]
pub struct ActiveSession {
    id: SessionId,
    identity: ClientIdentity,
    connected_at: Timestamp,
    /// Compact JSON text: a parsed object costs a map node (~600 bytes) per
    /// level, and metadata is read only when the record is shown.
    metadata: Box<str>,
    /// Milliseconds since the epoch; only ever moves forward.
    last_activity: AtomicI64,
    request_count: AtomicU64,
    reconnect_count: AtomicU64,
    /// Server-to-client streams open now; the session does not expire
    /// while there is one.
    open_streams: AtomicU32,
    /// Set when activity has not been flushed to the store yet.
    dirty: AtomicBool,
    /// Set once the session left the registry (ended or unloaded), before
    /// end-of-session subscribers hear of it.
    departed: AtomicBool,
}

impl ActiveSession {
    pub(crate) fn new(record: SessionRecord) -> Arc<Self> {
        Arc::new(ActiveSession {
            id: record.session_id,
            identity: record.client,
            connected_at: record.connected_at,
            metadata: record.metadata.to_string().into_boxed_str(),
            last_activity: AtomicI64::new(record.last_activity.as_millis()),
            request_count: AtomicU64::new(record.request_count),
            reconnect_count: AtomicU64::new(record.reconnect_count),
            open_streams: AtomicU32::new(0),
            dirty: AtomicBool::new(false),
            departed: AtomicBool::new(false),
        })
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    pub fn identity(&self) -> &ClientIdentity {
        &self.identity
    }

    /// The protocol revision negotiated at `initialize`.
    pub fn protocol_version(&self) -> &str {
        &self.identity.protocol_version
    }

    pub fn connected_at(&self) -> Timestamp {
        self.connected_at
    }

    pub fn last_activity(&self) -> Timestamp {
        Timestamp::from_millis(self.last_activity.load(Ordering::Relaxed))
    }

    pub fn request_count(&self) -> u64 {
        self.request_count.load(Ordering::Relaxed)
    }

    pub fn reconnect_count(&self) -> u64 {
        self.reconnect_count.load(Ordering::Relaxed)
    }

    pub(crate) fn set_reconnect_count(&self, n: u64) {
        self.reconnect_count.fetch_max(n, Ordering::Relaxed);
    }

    pub fn open_streams(&self) -> u32 {
        self.open_streams.load(Ordering::Relaxed)
    }

    /// Records a sign of life. Returns true when the session just became
    /// dirty, so the caller queues it for the next activity flush.
    pub(crate) fn touch(&self, now: Timestamp, requests: u64) -> bool {
        self.last_activity
            .fetch_max(now.as_millis(), Ordering::Relaxed);
        if requests > 0 {
            self.request_count.fetch_add(requests, Ordering::Relaxed);
        }
        !self.dirty.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn clear_dirty(&self) {
        self.dirty.store(false, Ordering::Release);
    }

    pub(crate) fn stream_opened(&self) {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stream_closed(&self) {
        self.open_streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether this session left the registry. State kept beside a session
    /// checks it after installing itself, so a departure racing with the
    /// install cannot leave it behind (the subscriber that removes it runs
    /// after the flag is set).
    pub fn departed(&self) -> bool {
        self.departed.load(Ordering::SeqCst)
    }

    pub(crate) fn depart(&self) {
        self.departed.store(true, Ordering::SeqCst);
    }

    /// The session as a record, with its live figures.
    pub fn record(&self) -> SessionRecord {
        SessionRecord {
            session_id: self.id,
            client: self.identity.clone(),
            connected_at: self.connected_at,
            last_activity: self.last_activity(),
            status: SessionStatus::Active,
            disconnected_at: None,
            disconnect_reason: None,
            total_duration: None,
            request_count: self.request_count(),
            metadata: serde_json::from_str(&self.metadata).unwrap_or(Value::Null),
            reconnect_count: self.reconnect_count(),
            // The hash lives in the store only.
            reconnect_token: None,
        }
    }
}
