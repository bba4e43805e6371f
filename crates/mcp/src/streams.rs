//! Resumable SSE streams of sessionful sessions.
//!
//! Each stream has a pump: it takes the messages its producer (a request's
//! handler, or the session's server-initiated traffic) writes, numbers them,
//! keeps them in the stream's in-memory tail, queues them for the durable
//! event log, and hands them to whichever HTTP connection is attached. A
//! connection can drop at any moment without loss: the producer never
//! notices, and a `GET` with `Last-Event-ID` attaches a new connection,
//! which first replays what followed that event (from the tail while the
//! stream lives, from the log after it ended or the process restarted) and
//! then continues live. The tail is read and the new connection attached
//! under one lock, and positions already replayed are skipped, so every
//! message arrives exactly once. A finished stream leaves the registry only
//! once its messages are durable.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use futures::{Stream, StreamExt};
use sessiongate_core::lifecycle::EventLog;
use sessiongate_core::store::StoreResult;
use sessiongate_core::stream::{EventId, StoredEvent, StreamId, StreamKind};
use sessiongate_core::SessionId;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

use crate::sse;

/// A numbered message on its way to a connection.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub data: Bytes,
}

impl From<StoredEvent> for Frame {
    fn from(e: StoredEvent) -> Self {
        Frame {
            seq: e.seq,
            data: e.message,
        }
    }
}

/// The position of no message: a frame with it tells the connection to end
/// with a retry hint (the client polls).
const POLL: u64 = 0;

/// Messages waiting for a slow connection before the pump waits too.
const CONNECTION_QUEUE: usize = 64;

/// Messages a live stream keeps in memory for resumption.
const TAIL: usize = 1000;

#[derive(Default)]
struct StreamState {
    subscriber: Option<mpsc::Sender<Frame>>,
    tail: VecDeque<Frame>,
}

struct LiveStream {
    session: SessionId,
    state: Mutex<StreamState>,
}

impl LiveStream {
    fn state(&self) -> std::sync::MutexGuard<'_, StreamState> {
        self.state.lock().expect("stream state poisoned")
    }

    /// Attaches a connection, closing the one attached before (a message
    /// goes to one connection only). Returns the tail after `after` too,
    /// read under the same lock as the attach.
    fn attach(&self, after: u64) -> (Vec<Frame>, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        let mut state = self.state();
        state.subscriber = Some(tx);
        let tail = state
            .tail
            .iter()
            .filter(|f| f.seq > after)
            .cloned()
            .collect();
        (tail, rx)
    }
}

/// Every live stream of the server.
#[derive(Clone, Default)]
pub struct Streams(Arc<DashMap<StreamId, Arc<LiveStream>>>);

impl Streams {
    /// Starts a stream fed by `messages` (after `first`) and returns its id
    /// and the receiver of its first connection. The stream lives until
    /// `messages` closes. `poll`, when notified, ends the attached
    /// connection with a retry hint while the stream goes on (the client
    /// resumes it with a GET).
    pub fn open(
        &self,
        event_log: Arc<EventLog>,
        session: SessionId,
        kind: StreamKind,
        first: Vec<Bytes>,
        messages: mpsc::Receiver<Bytes>,
        poll: Option<Arc<Notify>>,
    ) -> (StreamId, mpsc::Receiver<Frame>) {
        let id = StreamId::generate(kind);
        let live = Arc::new(LiveStream {
            session,
            state: Mutex::new(StreamState::default()),
        });
        let (_, rx) = live.attach(0);
        self.0.insert(id, live.clone());
        let streams = self.clone();
        tokio::spawn(async move {
            let mut seq = 0;
            let mut messages = futures::stream::iter(first).chain(ReceiverStream::new(messages));
            let polled = || async {
                match &poll {
                    Some(p) => p.notified().await,
                    None => std::future::pending().await,
                }
            };
            loop {
                // Messages already sent go out before a poll request that
                // came after them.
                let data = tokio::select! {
                    biased;
                    next = messages.next() => match next {
                        Some(data) => data,
                        None => break,
                    },
                    _ = polled() => {
                        let subscriber = live.state().subscriber.take();
                        if let Some(s) = subscriber {
                            let _ = s.send(Frame { seq: POLL, data: Bytes::new() }).await;
                        }
                        continue;
                    }
                };
                seq += 1;
                event_log
                    .append(StoredEvent {
                        session_id: session,
                        stream: id,
                        seq,
                        message: data.clone(),
                    })
                    .await;
                let frame = Frame { seq, data };
                let subscriber = {
                    let mut state = live.state();
                    if state.tail.len() == TAIL {
                        state.tail.pop_front();
                    }
                    state.tail.push_back(frame.clone());
                    state.subscriber.clone()
                };
                if let Some(s) = subscriber {
                    // A closed connection is fine: the message is kept.
                    let _ = s.send(frame).await;
                }
            }
            // The response is complete: let the connection end, and keep the
            // tail resumable until the log has it.
            live.state().subscriber.take();
            if let Err(e) = event_log.flushed().await {
                tracing::warn!(error = %e, session = %session.short(), "event log flush failed");
            }
            streams.0.remove(&id);
        });
        (id, rx)
    }

    /// Attaches a new connection to a live stream of `session`; returns the
    /// messages after `after` still in memory and the live receiver.
    fn attach(
        &self,
        session: SessionId,
        id: StreamId,
        after: u64,
    ) -> Option<(Vec<Frame>, mpsc::Receiver<Frame>)> {
        let live = self.0.get(&id)?.clone();
        (live.session == session).then(|| live.attach(after))
    }

    /// Resumes a stream of `session` after `from`. A new connection is
    /// attached to the stream if it is still live, taking its in-memory
    /// tail under the same lock, and only then is the log read, so nothing
    /// falls in between: the union of the two, by position, is the replay.
    pub async fn resume(
        &self,
        events: &EventLog,
        session: SessionId,
        from: EventId,
    ) -> StoreResult<Replay> {
        let (tail, live) = match self.attach(session, from.stream, from.seq) {
            Some((tail, rx)) => (tail, Some(rx)),
            None => (Vec::new(), None),
        };
        let logged = events.after(session, from.stream, from.seq).await?;
        let mut frames: BTreeMap<u64, Frame> =
            logged.into_iter().map(|e| (e.seq, e.into())).collect();
        frames.extend(tail.into_iter().map(|f| (f.seq, f)));
        Ok(Replay {
            frames: frames.into_values().collect(),
            live,
        })
    }

    /// Detaches every connection, so their responses end (graceful shutdown).
    pub fn close_connections(&self) {
        for s in self.0.iter() {
            s.state().subscriber.take();
        }
    }
}

/// What resuming a stream finds.
pub struct Replay {
    /// The messages after the position resumed from, in order.
    pub frames: Vec<Frame>,
    /// The stream's further messages, while it is live.
    pub live: Option<mpsc::Receiver<Frame>>,
}

/// How a resumable response body starts and when it lets go.
#[derive(Debug, Clone, Copy)]
pub struct BodyOptions {
    /// Send a priming event first (the stream's id at position 0, empty
    /// data, the `retry` hint), as 2025-11-25 asks.
    pub prime: bool,
    /// The `retry` hint sent when the server ends a connection early.
    pub retry: Duration,
    /// End the connection, with the `retry` hint, after this long without a
    /// message (2025-11-25 lets servers make clients poll).
    pub idle_close: Option<Duration>,
}

/// An event with no message: the stream's position `seq` and the `retry`
/// hint, for a client to resume from (priming, or before the server ends
/// the connection). Its data is empty, not absent, so clients dispatch it.
fn poll_event(stream: StreamId, seq: u64, retry: Duration) -> Bytes {
    sse::event(Some(EventId { stream, seq }), Some(retry), b"")
}

fn frame_event(stream: StreamId, seq: u64, data: &[u8]) -> Bytes {
    sse::event(Some(EventId { stream, seq }), None, data)
}

/// The encoded SSE events of one connection: `replay` (from the log), then
/// live frames after the last replayed position.
pub fn body(
    stream: StreamId,
    replay: Vec<Frame>,
    after: u64,
    live: Option<mpsc::Receiver<Frame>>,
    options: BodyOptions,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let last = replay.last().map_or(after, |e| e.seq);
    let retry = options.retry;
    let head = options
        .prime
        .then(|| poll_event(stream, 0, retry))
        .into_iter()
        .chain(
            replay
                .into_iter()
                .map(move |f| frame_event(stream, f.seq, &f.data)),
        )
        .collect::<Vec<_>>();
    let tail = futures::stream::unfold(
        (live, options.idle_close, false, last),
        move |(live, idle, done, mut last)| async move {
            if done {
                return None;
            }
            let mut rx = live?;
            loop {
                let next = match idle {
                    Some(after_idle) => match tokio::time::timeout(after_idle, rx.recv()).await {
                        Ok(next) => next,
                        // Quiet for long: hand the client a cursor and a
                        // retry hint, and let it poll.
                        Err(_) => {
                            let event = poll_event(stream, last, retry);
                            return Some((event, (None, idle, true, last)));
                        }
                    },
                    None => rx.recv().await,
                };
                let frame = next?;
                if frame.seq == POLL {
                    let event = poll_event(stream, last, retry);
                    return Some((event, (None, idle, true, last)));
                }
                if frame.seq <= last {
                    continue;
                }
                last = frame.seq;
                let event = frame_event(stream, frame.seq, &frame.data);
                return Some((event, (Some(rx), idle, false, last)));
            }
        },
    );
    futures::stream::iter(head).chain(tail)
}
