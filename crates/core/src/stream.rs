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

use bytes::Bytes;

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

/// The last number [`ordered_number`] handed out in this process.
static LAST: AtomicU64 = AtomicU64::new(0);

/// A number that only grows: the wall clock's milliseconds shifted left by
/// 20 bits, or one more than the last number if that is larger. Wall-clock
/// time (not the injectable [`crate::Clock`]) because this only has to order
/// and tell apart, including across restarts. Stream and page ids share it,
/// so a page drawn after a stream opened has the larger number.
fn ordered_number() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        << 20;
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or_default();
    now.max(prev + 1)
}

impl StreamId {
    /// A new stream id, larger than every one before it.
    pub fn generate(kind: StreamKind) -> Self {
        StreamId {
            kind,
            n: ordered_number(),
        }
    }

    /// The id as text: its kind's letter and 16 hex digits. Written for
    /// every logged event and every SSE id, so without the formatting
    /// machinery.
    fn text(&self) -> [u8; 17] {
        let mut text = [0u8; 17];
        text[0] = match self.kind {
            StreamKind::Request => b'r',
            StreamKind::Standalone => b'g',
        };
        // Eight bytes always fit sixteen digits.
        let _ = hex::encode_to_slice(self.n.to_be_bytes(), &mut text[1..]);
        text
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
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
        // `from_str_radix` also takes a leading `+`.
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
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
        // Digits only: `u64::from_str` also takes a leading `+`.
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
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
    /// The JSON-RPC message, as sent (shared with the stream that sent it).
    pub message: Bytes,
}

impl StoredEvent {
    pub fn id(&self) -> EventId {
        EventId {
            stream: self.stream,
            seq: self.seq,
        }
    }
}

/// The id of a page of the event log; ids grow with time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageId(pub u64);

impl PageId {
    /// A new page id, larger than the id of every stream opened before.
    pub fn generate() -> Self {
        PageId(ordered_number())
    }
}

/// Which page of which session: what the log drops once newer pages push
/// it out of the session's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageKey {
    pub session_id: SessionId,
    pub page: PageId,
}

/// One session's events from one write of the event log, stored as one
/// row: a busy session's hundreds of messages per write cost the store one
/// row, not one each.
///
/// Each event is encoded as a text header, `<stream id> <seq> <length>`
/// and a newline, then the message's `length` bytes: self-delimiting
/// whatever the message holds, and simple enough for SQL to build (the
/// migration that introduced pages does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    pub session_id: SessionId,
    pub id: PageId,
    pub at: Timestamp,
    pub body: Vec<u8>,
}

/// A page whose body is not a sequence of encoded events. Its message names
/// the session by its short id: it ends up in error logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event page {page} of session {} is malformed at byte {at}", .session.short())]
pub struct BadPage {
    pub session: SessionId,
    pub page: u64,
    pub at: usize,
}

impl EventPage {
    /// An empty page of `session`, written at `at`.
    pub fn new(session_id: SessionId, at: Timestamp) -> Self {
        EventPage {
            session_id,
            id: PageId::generate(),
            at,
            body: Vec::new(),
        }
    }

    pub fn key(&self) -> PageKey {
        PageKey {
            session_id: self.session_id,
            page: self.id,
        }
    }

    /// Adds a message of this page's session.
    pub fn push(&mut self, stream: StreamId, seq: u64, message: &[u8]) {
        let mut number = itoa::Buffer::new();
        self.body.extend_from_slice(&stream.text());
        self.body.push(b' ');
        self.body.extend_from_slice(number.format(seq).as_bytes());
        self.body.push(b' ');
        self.body
            .extend_from_slice(number.format(message.len()).as_bytes());
        self.body.push(b'\n');
        self.body.extend_from_slice(message);
    }

    /// The page's events, in the order they were pushed; each message
    /// shares the page's bytes.
    pub fn into_events(self) -> Result<Vec<StoredEvent>, BadPage> {
        let body = Bytes::from(self.body);
        let bad = |at| BadPage {
            session: self.session_id,
            page: self.id.0,
            at,
        };
        let mut events = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let line_end = body[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|n| at + n)
                .ok_or_else(|| bad(at))?;
            let header = std::str::from_utf8(&body[at..line_end]).map_err(|_| bad(at))?;
            let mut fields = header.split(' ');
            let (Some(stream), Some(seq), Some(len), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(bad(at));
            };
            let stream = stream.parse().map_err(|_| bad(at))?;
            let seq = seq.parse().map_err(|_| bad(at))?;
            let len: usize = len.parse().map_err(|_| bad(at))?;
            let start = line_end + 1;
            let end = start
                .checked_add(len)
                .filter(|&end| end <= body.len())
                .ok_or_else(|| bad(at))?;
            events.push(StoredEvent {
                session_id: self.session_id,
                stream,
                seq,
                message: body.slice(start..end),
            });
            at = end;
        }
        Ok(events)
    }
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
            "r+000000000000000-1",
            "r0000000000000000-+1",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_holds_any_message_bytes_and_refuses_a_malformed_body() {
        let session = SessionId::generate();
        let stream = StreamId::generate(StreamKind::Request);
        let messages: [&[u8]; 4] = [b"{}", b"", b"line\nbreak 3 4\n", &[0, 0xff, b'\n']];
        let mut page = EventPage::new(session, Timestamp::from_millis(1));
        for (seq, m) in (1..).zip(messages) {
            page.push(stream, seq, m);
        }
        let back = page.clone().into_events().unwrap();
        assert_eq!(back.len(), messages.len());
        for ((e, m), seq) in back.iter().zip(messages).zip(1..) {
            assert_eq!(
                (e.session_id, e.stream, e.seq, &e.message[..]),
                (session, stream, seq, m)
            );
        }

        let body = page.body.clone();
        for bad in [
            &body[..body.len() - 1],
            b"r0000000000000001 1 2".as_slice(),
            b"r0000000000000001 1\n{}",
            b"r0000000000000001 1 -2\n{}",
            b"x0000000000000001 1 2\n{}",
            b"r0000000000000001 1 18446744073709551615\n{}",
        ] {
            let page = EventPage {
                body: bad.to_vec(),
                ..page.clone()
            };
            assert!(
                page.into_events().is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
