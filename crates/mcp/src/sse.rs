//! Server-sent events as the transport writes them (the WHATWG
//! `text/event-stream` format): each event encoded into one buffer, and the
//! stream of a response body that adds a keep-alive comment whenever it has
//! been idle for a while.
//!
//! We encode events ourselves instead of with axum's `sse::Event`, which
//! writes no `data` line for empty data: a priming event (an id, a `retry`
//! hint and empty data, 2025-11-25) must have one, since a client taking
//! events the way `EventSource` does dispatches no event without a data
//! line. The format: an `id` line when the event has one, a `retry` line in
//! milliseconds when it has one, then one `data` line per line of the data
//! (a CR, LF or CRLF in it starts the next line; empty data is one empty
//! `data` line), and a blank line that ends the event.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use pin_project_lite::pin_project;
use sessiongate_core::stream::EventId;
use tokio::time::{Instant, Sleep};

/// What a connection gets after an interval without events: a comment,
/// which clients skip, so that proxies and clients see the stream alive.
const KEEP_ALIVE: &[u8] = b":\n\n";

/// Room for an event id's text (a stream id of 17 characters, `-`, and a
/// `u64` of at most 20 digits).
const ID_ROOM: usize = 40;

/// The encoding of one event: `id` and `retry` when given, then `data`.
pub fn event(id: Option<EventId>, retry: Option<Duration>, data: &[u8]) -> Bytes {
    let id = id.map(IdText::new);
    let mut millis = itoa::Buffer::new();
    let retry = retry.map(|r| millis.format(r.as_millis()).as_bytes());
    // Sized exactly, so the buffer becomes the `Bytes` without a copy or a
    // second allocation.
    let len = id.as_ref().map_or(0, |id| b"id: \n".len() + id.len)
        + retry.map_or(0, |r| b"retry: \n".len() + r.len())
        + lines(data)
            .map(|line| b"data: \n".len() + line.len() - usize::from(line.is_empty()))
            .sum::<usize>()
        + 1;
    let mut buf = Vec::with_capacity(len);
    write(&mut buf, id.as_ref().map(IdText::as_bytes), retry, data);
    debug_assert_eq!(buf.len(), len);
    Bytes::from(buf)
}

/// Appends the encoding of an event without a `retry` hint to `buf` (for a
/// body of several events written at once).
pub fn append(buf: &mut Vec<u8>, id: Option<EventId>, data: &[u8]) {
    let id = id.map(IdText::new);
    write(buf, id.as_ref().map(IdText::as_bytes), None, data);
}

fn write(buf: &mut Vec<u8>, id: Option<&[u8]>, retry: Option<&[u8]>, data: &[u8]) {
    if let Some(id) = id {
        buf.extend_from_slice(b"id: ");
        buf.extend_from_slice(id);
        buf.push(b'\n');
    }
    if let Some(retry) = retry {
        buf.extend_from_slice(b"retry: ");
        buf.extend_from_slice(retry);
        buf.push(b'\n');
    }
    for line in lines(data) {
        if line.is_empty() {
            buf.extend_from_slice(b"data:\n");
        } else {
            buf.extend_from_slice(b"data: ");
            buf.extend_from_slice(line);
            buf.push(b'\n');
        }
    }
    buf.push(b'\n');
}

/// The lines of `data` as SSE reads them: broken at CRLF, LF and CR. Empty
/// data is one empty line.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let text = rest?;
        match memchr::memchr2(b'\n', b'\r', text) {
            None => {
                rest = None;
                Some(text)
            }
            Some(end) => {
                let next = match &text[end..] {
                    [b'\r', b'\n', ..] => end + 2,
                    _ => end + 1,
                };
                rest = Some(&text[next..]);
                Some(&text[..end])
            }
        }
    })
}

/// An event id's text, written without allocating.
struct IdText {
    text: [u8; ID_ROOM],
    len: usize,
}

impl IdText {
    fn new(id: EventId) -> Self {
        let mut text = [0; ID_ROOM];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        // Fits: the longest id is 38 bytes.
        let _ = write!(cursor, "{id}");
        let len = cursor.position() as usize;
        IdText { text, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len]
    }
}

pin_project! {
    /// The body of a streamed SSE response: `events` (each one encoded
    /// event), and a keep-alive comment after every `interval` in which none
    /// came.
    pub struct KeepAlive<S> {
        #[pin]
        events: S,
        #[pin]
        idle: Sleep,
        interval: Duration,
    }
}

impl<S> KeepAlive<S> {
    pub fn new(events: S, interval: Duration) -> Self {
        KeepAlive {
            events,
            idle: tokio::time::sleep(interval),
            interval,
        }
    }
}

impl<S: Stream<Item = Bytes>> Stream for KeepAlive<S> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let event = match this.events.poll_next(cx) {
            Poll::Ready(Some(event)) => event,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {
                ready!(this.idle.as_mut().poll(cx));
                Bytes::from_static(KEEP_ALIVE)
            }
        };
        this.idle.reset(Instant::now() + *this.interval);
        Poll::Ready(Some(Ok(event)))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures::StreamExt;
    use proptest::prelude::*;
    use sessiongate_core::stream::{StreamId, StreamKind};
    use sse_stream::{Sse, SseStream};

    use super::*;

    fn id(seq: u64) -> EventId {
        EventId {
            stream: StreamId {
                kind: StreamKind::Request,
                n: 0x0123_4567_89ab_cdef,
            },
            seq,
        }
    }

    fn text(bytes: Bytes) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Reads `body` as rmcp's clients do.
    fn parse(body: Vec<u8>) -> Vec<Sse> {
        let chunks = futures::stream::iter([Ok::<_, Infallible>(Bytes::from(body))]);
        futures::executor::block_on(
            SseStream::from_bytes_stream(chunks)
                .map(|e| e.unwrap())
                .collect(),
        )
    }

    #[test]
    fn a_priming_event_has_an_id_a_retry_hint_and_one_empty_data_line() {
        let bytes = event(Some(id(0)), Some(Duration::from_millis(1500)), b"");
        assert_eq!(
            text(bytes),
            "id: r0123456789abcdef-0\nretry: 1500\ndata:\n\n"
        );
    }

    #[test]
    fn a_message_is_one_data_line_after_its_id() {
        let bytes = event(Some(id(u64::MAX)), None, br#"{"a":1}"#);
        assert_eq!(
            text(bytes),
            "id: r0123456789abcdef-18446744073709551615\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(text(event(None, None, b"x")), "data: x\n\n");
    }

    #[test]
    fn each_line_of_the_data_is_a_data_line_whatever_breaks_it() {
        let bytes = event(None, None, b"a\nb\r\nc\rd\n\n e");
        assert_eq!(
            text(bytes),
            "data: a\ndata: b\ndata: c\ndata: d\ndata:\ndata:  e\n\n"
        );
        assert_eq!(text(event(None, None, b"a\n")), "data: a\ndata:\n\n");
    }

    #[test]
    fn retry_is_written_in_whole_milliseconds() {
        let hint = |d| text(event(None, Some(d), b"x"));
        assert_eq!(hint(Duration::from_secs(3)), "retry: 3000\ndata: x\n\n");
        assert_eq!(hint(Duration::from_micros(2999)), "retry: 2\ndata: x\n\n");
    }

    #[test]
    fn appended_events_follow_one_another() {
        let mut buf = Vec::new();
        append(&mut buf, Some(id(1)), b"one");
        append(&mut buf, None, b"two");
        let events = parse(buf);
        assert_eq!(
            events,
            [
                Sse::default().id(id(1).to_string()).data("one"),
                Sse::default().data("two"),
            ]
        );
    }

    #[tokio::test]
    async fn keep_alive_comments_fill_only_the_idle_time() {
        // Events that are ready at once leave no room for a comment.
        let ready = futures::stream::iter([event(None, None, b"a"), event(None, None, b"b")]);
        let body: Vec<_> = KeepAlive::new(ready, Duration::from_millis(1))
            .map(|e| text(e.unwrap()))
            .collect()
            .await;
        assert_eq!(body, ["data: a\n\n", "data: b\n\n"]);

        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let body = KeepAlive::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            Duration::from_millis(20),
        );
        let mut body = std::pin::pin!(body);
        async fn next(
            mut body: Pin<&mut impl Stream<Item = Result<Bytes, Infallible>>>,
        ) -> Option<String> {
            body.next().await.map(|e| text(e.unwrap()))
        }
        assert_eq!(next(body.as_mut()).await.unwrap(), ":\n\n");
        assert_eq!(next(body.as_mut()).await.unwrap(), ":\n\n");
        tx.send(event(None, None, b"c")).await.unwrap();
        assert_eq!(next(body.as_mut()).await.unwrap(), "data: c\n\n");
        drop(tx);
        assert_eq!(next(body.as_mut()).await, None);
    }

    /// Text with every kind of line break, blank lines and leading spaces.
    fn data() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                "[ a-z{}\":,é]{0,12}",
                Just("\n".to_string()),
                Just("\r".to_string()),
                Just("\r\n".to_string()),
                Just(" ".to_string()),
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn what_is_written_reads_back(
            events in proptest::collection::vec(
                (
                    proptest::option::of(any::<u64>()),
                    proptest::option::of(0u64..10_000_000),
                    data(),
                ),
                1..5,
            ),
        ) {
            let mut body = Vec::new();
            for (seq, retry, data) in &events {
                let bytes = event(seq.map(id), retry.map(Duration::from_millis), data.as_bytes());
                body.extend_from_slice(&bytes);
            }
            let read = parse(body);
            prop_assert_eq!(read.len(), events.len());
            for ((seq, retry, data), read) in events.iter().zip(read) {
                let lines = data.replace("\r\n", "\n").replace('\r', "\n");
                prop_assert_eq!(read.id, seq.map(|s| id(s).to_string()));
                prop_assert_eq!(read.retry, *retry);
                // Present even when empty: clients dispatch the event.
                prop_assert_eq!(read.data, Some(lines));
                prop_assert_eq!(read.event, None);
            }
        }
    }
}
