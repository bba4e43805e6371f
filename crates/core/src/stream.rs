//! Server-to-client SSE streams of sessionful sessions and the events on
//! them, as the durable event log records them for resumption.
//!
//! Every event id names its stream and its place in it (`r1f3a…-7`), so a
//! client's `Last-Event-ID` tells the server which stream to resume and from
//! where. Stream ids are 64 random bits, so ids are unique across all of a
//! server's streams, before and after restarts.

use std::fmt;
use std::str::FromStr;

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

/// A stream's identity: its kind and 64 random bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub kind: StreamKind,
    pub n: u64,
}

impl StreamId {
    pub fn generate(kind: StreamKind) -> Self {
        StreamId {
            kind,
            n: rand::random(),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = match self.kind {
            StreamKind::Request => 'r',
            StreamKind::Standalone => 'g',
        };
        write!(f, "{k}{:016x}", self.n)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_and_reject_foreign_ids() {
        for kind in [StreamKind::Request, StreamKind::Standalone] {
            let id = EventId {
                stream: StreamId::generate(kind),
                seq: 42,
            };
            assert_eq!(id.to_string().parse::<EventId>().unwrap(), id);
        }
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
