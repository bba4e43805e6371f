//! The durable event log of server-to-client SSE messages, for resumable
//! streams. Appends are written behind, in batches, by one task: a stream
//! hands a message to its connection without waiting for the disk (it keeps
//! the message in memory until the log has it), and a finished stream waits
//! for [`EventLog::flushed`] before it forgets its messages. A `kill -9`
//! can lose only what was queued in the last moments (one batch, gathered
//! for at most 100 ms), never
//! what a finished stream sent.
//!
//! The log keeps each session's newest events within a retention window.
//! The store orders events by stream, and stream ids grow with time, so
//! appends land at the end of its key order; finding a session's oldest
//! events there would take an index by session, written out of order for
//! every event. So the writer tracks each session's window itself
//! ([`SessionWindows`]) and hands the pruner the stretches of streams that
//! fell out of it; events older than the retention time go by time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, Timestamp};
use crate::ids::SessionId;
use crate::store::{SessionStore, StoreError, StoreResult};
use crate::stream::{EventStretch, StoredEvent, StreamId};

/// What the event log keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLogConfig {
    /// Off: streams still carry ids and resume while the server runs, but
    /// nothing is written (for measuring the log's cost).
    pub enabled: bool,
    /// Newest events kept per session, at least (whole stretches of a
    /// stream go at once).
    pub keep_per_session: u32,
    /// Events older than this are pruned.
    pub retention: Duration,
    pub prune_interval: Duration,
    /// How long messages gather before a batch is written.
    pub flush_interval: Duration,
}

impl Default for EventLogConfig {
    fn default() -> Self {
        EventLogConfig {
            enabled: true,
            keep_per_session: 1000,
            retention: Duration::from_secs(15 * 60),
            prune_interval: Duration::from_secs(10),
            flush_interval: Duration::from_millis(100),
        }
    }
}

enum Append {
    Event(StoredEvent),
    /// Answered once every event queued before it is durable.
    Barrier(oneshot::Sender<StoreResult<()>>),
}

/// Handle to the event log.
pub struct EventLog {
    store: Arc<dyn SessionStore>,
    config: EventLogConfig,
    appends: mpsc::Sender<Append>,
}

/// Appends written in one transaction, at most.
const BATCH_MAX: usize = 8192;
/// How often a gathering batch takes in what has queued: often enough that
/// the queue never fills meanwhile (a full queue makes streams wait), rarely
/// enough that the writer does not wake for every message.
const DRAIN_EVERY: Duration = Duration::from_millis(5);

impl EventLog {
    pub(crate) fn start(
        store: Arc<dyn SessionStore>,
        clock: SharedClock,
        config: EventLogConfig,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(8192);
        let dropped = Arc::new(Mutex::new(Vec::new()));
        let pruner = tokio::spawn(run_pruner(
            store.clone(),
            clock.clone(),
            config.clone(),
            dropped.clone(),
            shutdown.clone(),
        ));
        let windows = SessionWindows::new(config.keep_per_session);
        let writer = run_writer(
            store.clone(),
            clock,
            config.clone(),
            windows,
            dropped,
            rx,
            shutdown,
        );
        let task = tokio::spawn(async move {
            writer.await;
            pruner.abort();
        });
        (
            EventLog {
                store,
                config,
                appends: tx,
            },
            task,
        )
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Queues an event for the log. Waits only when the queue is full.
    pub async fn append(&self, event: StoredEvent) {
        if !self.config.enabled {
            return;
        }
        if self.appends.send(Append::Event(event)).await.is_err() {
            tracing::warn!("event log closed; event dropped during shutdown");
        }
    }

    /// Returns once every event queued before this call is durable.
    pub async fn flushed(&self) -> StoreResult<()> {
        if !self.config.enabled {
            return Ok(());
        }
        let (ack, done) = oneshot::channel();
        let closed = || StoreError::Database("the event log is shut down".into());
        self.appends
            .send(Append::Barrier(ack))
            .await
            .map_err(|_| closed())?;
        done.await.map_err(|_| closed())?
    }

    /// The events of a stream after `after`, in order (at most the number
    /// the log keeps per session).
    pub async fn after(
        &self,
        session: SessionId,
        stream: StreamId,
        after: u64,
    ) -> StoreResult<Vec<StoredEvent>> {
        if !self.config.enabled {
            return Ok(Vec::new());
        }
        self.store
            .events_after(session, stream, after, self.config.keep_per_session)
            .await
    }
}

/// Stretches that fell out of their sessions' windows, waiting for the
/// pruner.
type Dropped = Arc<Mutex<Vec<EventStretch>>>;

/// Stretches deleted per store call.
const DROP_CHUNK: usize = 1000;

/// Prunes the log on its own schedule, apart from the writer, so appends
/// never wait for a prune.
async fn run_pruner(
    store: Arc<dyn SessionStore>,
    clock: SharedClock,
    config: EventLogConfig,
    dropped: Dropped,
    shutdown: CancellationToken,
) {
    let mut prune = tokio::time::interval(config.prune_interval);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = prune.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let mut stretches = std::mem::take(&mut *dropped.lock().unwrap_or_else(|e| e.into_inner()));
        // Oldest stream first, as the store orders them, so each chunk
        // deletes from neighbouring pages.
        stretches.sort_unstable_by_key(|s| s.stream.n);
        let mut pruned = 0;
        for chunk in stretches.chunks(DROP_CHUNK) {
            match store.drop_events(chunk).await {
                Ok(n) => pruned += n,
                Err(e) => tracing::warn!(error = %e, "dropping old events from the log failed"),
            }
        }
        let before = clock.now().saturating_sub(config.retention);
        match store.prune_events(before).await {
            Ok(n) => pruned += n,
            Err(e) => tracing::warn!(error = %e, "pruning the event log failed"),
        }
        if pruned > 0 {
            tracing::debug!(pruned, "pruned the event log");
        }
    }
}

async fn run_writer(
    store: Arc<dyn SessionStore>,
    clock: SharedClock,
    config: EventLogConfig,
    mut windows: SessionWindows,
    dropped: Dropped,
    mut rx: mpsc::Receiver<Append>,
    shutdown: CancellationToken,
) {
    let mut buf = Vec::with_capacity(BATCH_MAX);
    let mut swept = tokio::time::Instant::now();
    loop {
        let mut closing = tokio::select! {
            n = rx.recv_many(&mut buf, BATCH_MAX) => n == 0,
            _ = shutdown.cancelled() => true,
        };
        // Let a batch gather for up to `flush_interval`: one transaction per
        // message would cost the streams more than the messages themselves.
        let deadline = tokio::time::Instant::now() + config.flush_interval;
        while !closing && buf.len() < BATCH_MAX {
            let wake = deadline.min(tokio::time::Instant::now() + DRAIN_EVERY);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = shutdown.cancelled() => closing = true,
            }
            while buf.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(a) => buf.push(a),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closing = true;
                        break;
                    }
                }
            }
            if wake >= deadline {
                break;
            }
        }
        if closing {
            while let Ok(a) = rx.try_recv() {
                buf.push(a);
            }
        }
        if !buf.is_empty() {
            let mut events = Vec::with_capacity(buf.len());
            let mut barriers = Vec::new();
            for a in buf.drain(..) {
                match a {
                    Append::Event(e) => events.push(e),
                    Append::Barrier(ack) => barriers.push(ack),
                }
            }
            let result = write_with_retry(&*store, &events).await;
            for ack in barriers {
                let _ = ack.send(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(StoreError::Database(e.to_string())),
                });
            }
            if result.is_ok() {
                let mut out = Vec::new();
                windows.record(&events, &mut out);
                if !out.is_empty() {
                    dropped
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(out);
                }
            }
        }
        if closing {
            return;
        }
        if swept.elapsed() >= config.prune_interval {
            swept = tokio::time::Instant::now();
            windows.forget_before(clock.now().saturating_sub(config.retention));
        }
    }
}

/// Retries a failed batch a few times; the queue behind it fills meanwhile
/// and slows the streams down instead of losing events.
async fn write_with_retry(store: &dyn SessionStore, events: &[StoredEvent]) -> StoreResult<()> {
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match store.append_events(events).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 => {
                metrics::counter!("sessiongate_store_errors_total", "operation" => "event_log")
                    .increment(1);
                tracing::warn!(error = %e, attempt, count = events.len(), "appending to the event log failed");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => {
                tracing::error!(error = %e, count = events.len(), "appending to the event log failed; events lost");
                return Err(e);
            }
        }
    }
}

/// Each session's newest logged events, as runs of one stream, oldest
/// first: enough to tell which stretches fall out of a session's window
/// without reading the log. It covers what this process wrote; events from
/// before a restart leave by time alone.
#[derive(Debug)]
struct SessionWindows {
    keep: u32,
    sessions: HashMap<SessionId, Window>,
}

#[derive(Debug, Default)]
struct Window {
    runs: VecDeque<Run>,
    events: u32,
}

/// Consecutive events of one stream in a session's log.
#[derive(Debug)]
struct Run {
    stream: StreamId,
    last_seq: u64,
    count: u32,
    last_at: Timestamp,
}

impl SessionWindows {
    fn new(keep: u32) -> Self {
        SessionWindows {
            keep,
            sessions: HashMap::new(),
        }
    }

    /// Takes in events just written; adds to `out` the stretches that no
    /// longer fit their session's window.
    fn record(&mut self, events: &[StoredEvent], out: &mut Vec<EventStretch>) {
        for e in events {
            let window = self.sessions.entry(e.session_id).or_default();
            match window.runs.back_mut() {
                Some(run) if run.stream == e.stream && run.last_seq < e.seq => {
                    run.last_seq = e.seq;
                    run.count += 1;
                    run.last_at = e.at;
                }
                _ => window.runs.push_back(Run {
                    stream: e.stream,
                    last_seq: e.seq,
                    count: 1,
                    last_at: e.at,
                }),
            }
            window.events += 1;
            while let Some(oldest) = window.runs.front() {
                if window.events - oldest.count < self.keep {
                    break;
                }
                window.events -= oldest.count;
                out.push(EventStretch {
                    session_id: e.session_id,
                    stream: oldest.stream,
                    through: oldest.last_seq,
                });
                window.runs.pop_front();
            }
        }
    }

    /// Forgets runs that end before `before`: the store prunes those by
    /// time, and sessions that went quiet must not be remembered forever.
    fn forget_before(&mut self, before: Timestamp) {
        self.sessions.retain(|_, window| {
            while window.runs.front().is_some_and(|r| r.last_at < before) {
                if let Some(run) = window.runs.pop_front() {
                    window.events -= run.count;
                }
            }
            !window.runs.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamKind;

    fn event(session: SessionId, stream: StreamId, seq: u64, at: i64) -> StoredEvent {
        StoredEvent {
            session_id: session,
            stream,
            seq,
            at: Timestamp::from_millis(at),
            message: String::new(),
        }
    }

    #[test]
    fn a_session_keeps_its_newest_events_and_drops_whole_older_stretches() {
        let (a, b) = (SessionId::generate(), SessionId::generate());
        let (s1, s2, s3) = (
            StreamId::generate(StreamKind::Request),
            StreamId::generate(StreamKind::Request),
            StreamId::generate(StreamKind::Standalone),
        );
        let mut windows = SessionWindows::new(3);
        let mut out = Vec::new();
        windows.record(
            &[event(a, s1, 1, 1), event(a, s1, 2, 2), event(b, s2, 1, 2)],
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        // Interleaved streams make separate runs; a's s1 (2 events) leaves
        // once 3 newer ones are in, and b's single event stays.
        windows.record(
            &[event(a, s3, 1, 3), event(a, s2, 1, 4), event(a, s3, 2, 5)],
            &mut out,
        );
        assert_eq!(
            out,
            [EventStretch {
                session_id: a,
                stream: s1,
                through: 2
            }]
        );
        out.clear();
        // An older run of the same stream goes on its own, up to its end.
        windows.record(&[event(a, s2, 2, 6)], &mut out);
        assert_eq!(
            out,
            [EventStretch {
                session_id: a,
                stream: s3,
                through: 1
            }]
        );

        // Quiet sessions are forgotten once their runs are past the window.
        windows.forget_before(Timestamp::from_millis(3));
        assert!(!windows.sessions.contains_key(&b));
        assert_eq!(windows.sessions[&a].events, 3);
        windows.forget_before(Timestamp::from_millis(100));
        assert!(windows.sessions.is_empty());
    }
}
