//! Server-to-client SSE streams of sessionful sessions and the events on
//! them, as the durable event log records them for resumption.
//!
//! Every event id names its stream and its place in it (`r1f3a…-7`), so a
//! client's `Last-Event-ID` tells the server which stream to resume and from
//! where. Stream ids grow with time (milliseconds since the epoch, then a
//! counter), so ids are unique across all of a server's streams, before and
//! after restarts, and a session's new streams land at the end of the event
//! log's key order instead of at random places in it.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clock::Timestamp;
use crate::ids::SessionId;

/// What opened a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// The response stream of one POSTed request; it ends with the response.
    Request,
    /// The session's standalone GET stream.
    Standalone,
}

/// A stream's identity: its kind and 64 bits that only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub kind: StreamKind,
    pub n: u64,
}

/// The last stream number handed out in this process.
static LAST: AtomicU64 = AtomicU64::new(0);

impl StreamId {
    /// A new stream id: the wall clock's milliseconds shifted left by 20
    /// bits, or one more than the last id if that is larger. Wall-clock time
    /// (not the injectable [`crate::Clock`]) because this only has to order
    /// and tell apart, including across restarts.
    pub fn generate(kind: StreamKind) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            << 20;
        let prev = LAST
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or_default();
        StreamId {
            kind,
            n: now.max(prev + 1),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = match self.kind {
            StreamKind::Request => 'r',
            StreamKind::Standalone => 'g',
        };
        // Written for every logged event and every SSE id: see SessionId's.
        let mut text = [0u8; 17];
        text[0] = k as u8;
        hex::encode_to_slice(self.n.to_be_bytes(), &mut text[1..]).map_err(|_| fmt::Error)?;
        f.pad(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// A string that is not a stream or event id of this server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an event id of this server: {0:?}")]
pub struct BadEventId(pub String);

impl FromStr for StreamId {
    type Err = BadEventId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadEventId(s.to_string());
        let kind = match s.as_bytes().first() {
            Some(b'r') => StreamKind::Request,
            Some(b'g') => StreamKind::Standalone,
            _ => return Err(bad()),
        };
        let hex = &s[1..];
        if hex.len() != 16 {
            return Err(bad());
        }
        let n = u64::from_str_radix(hex, 16).map_err(|_| bad())?;
        Ok(StreamId { kind, n })
    }
}

/// An SSE event id: a stream and a position in it (1 is the first message;
/// 0 is the priming event that precedes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId {
    pub stream: StreamId,
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.stream, self.seq)
    }
}

impl FromStr for EventId {
    type Err = BadEventId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadEventId(s.to_string());
        let (stream, seq) = s.trim().split_once('-').ok_or_else(bad)?;
        Ok(EventId {
            stream: stream.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// One server-to-client message as the event log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub session_id: SessionId,
    pub stream: StreamId,
    pub seq: u64,
    pub at: Timestamp,
    /// The JSON-RPC message, as sent.
    pub message: String,
}

impl StoredEvent {
    pub fn id(&self) -> EventId {
        EventId {
            stream: self.stream,
            seq: self.seq,
        }
    }
}

/// The start of one of a session's streams, up to and including position
/// `through`: what the event log drops once newer events have pushed it out
/// of the session's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventStretch {
    pub session_id: SessionId,
    pub stream: StreamId,
    pub through: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_grow_in_number_and_in_text() {
        let ids: Vec<StreamId> = (0..1000)
            .map(|_| StreamId::generate(StreamKind::Request))
            .collect();
        for pair in ids.windows(2) {
            assert!(pair[0].n < pair[1].n);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
    }

    #[test]
    fn event_ids_round_trip_and_reject_foreign_ids() {
        for kind in [StreamKind::Request, StreamKind::Standalone] {
            let id = EventId {
                stream: StreamId::generate(kind),
                seq: 42,
            };
            assert_eq!(id.to_string().parse::<EventId>().unwrap(), id);
        }
        let small = EventId {
            stream: StreamId {
                kind: StreamKind::Standalone,
                n: 0xABC,
            },
            seq: 7,
        };
        assert_eq!(small.to_string(), "g0000000000000abc-7");
        for bad in [
            "",
            "42",
            "x0000000000000000-1",
            "r00-1",
            "r0000000000000000-",
            "r0000000000000000-x",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
    }
}
