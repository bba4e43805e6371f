//! The durable event log of server-to-client SSE messages, for resumable
//! streams. Appends are written behind, in batches, by one task: a stream
//! hands a message to its connection without waiting for the disk (it keeps
//! the message in memory until the log has it), and a finished stream waits
//! for [`EventLog::flushed`] before it forgets its messages. A `kill -9`
//! can lose only what was queued in the last moments (one batch, gathered
//! for at most 100 ms), never
//! what a finished stream sent.
//!
//! Each batch goes to the store as one page per session ([`EventPage`]):
//! under load a session's hundreds of messages per batch cost one row, and
//! a row per message cost the streams more than the messages themselves.
//! Page ids grow with time and are drawn after the streams whose events
//! they hold opened, so a stream's events are on the session's pages from
//! the stream's own id on.
//!
//! The log keeps each session's newest events within a retention window.
//! The writer tracks each session's pages itself ([`SessionWindows`]) and
//! hands the pruner the pages that fell out of the window; pages older
//! than the retention time go by time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::config::EventLogConfig;
use crate::clock::{SharedClock, Timestamp};
use crate::ids::SessionId;
use crate::store::{EventLogStore, StoreError, StoreResult};
use crate::stream::{EventPage, PageId, PageKey, StoredEvent, StreamId};

enum Append {
    Event(StoredEvent),
    /// Answered once every event queued before it is durable.
    Barrier(oneshot::Sender<StoreResult<()>>),
}

/// Handle to the event log.
pub struct EventLog {
    /// Where pages are written and read back from.
    store: Arc<dyn EventLogStore>,
    /// Whether the log is on, and how many events it keeps per session.
    config: EventLogConfig,
    /// The writer task's queue: events, and barriers for [`Self::flushed`].
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
        store: Arc<dyn EventLogStore>,
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
        // Most appends find room: skip the waiting machinery for them.
        let sent = match self.appends.try_send(Append::Event(event)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(event)) => self.appends.send(event).await.map_err(drop),
            Err(TrySendError::Closed(_)) => Err(()),
        };
        if sent.is_err() {
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
        let pages = self.store.event_pages(session, PageId(stream.n)).await?;
        let mut events = Vec::new();
        for page in pages {
            let page = page
                .into_events()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            events.extend(
                page.into_iter()
                    .filter(|e| e.stream == stream && e.seq > after),
            );
        }
        events.sort_by_key(|e| e.seq);
        events.truncate(self.config.keep_per_session as usize);
        Ok(events)
    }
}

/// Pages that fell out of their sessions' windows, waiting for the pruner.
type Dropped = Arc<Mutex<Vec<PageKey>>>;

/// Pages deleted per store call.
const DROP_CHUNK: usize = 1000;

/// Prunes the log on its own schedule, apart from the writer, so appends
/// never wait for a prune.
async fn run_pruner(
    store: Arc<dyn EventLogStore>,
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
        let mut pages = std::mem::take(&mut *dropped.lock().unwrap_or_else(|e| e.into_inner()));
        pages.sort_unstable_by_key(|p| p.page);
        let mut pruned = 0;
        for chunk in pages.chunks(DROP_CHUNK) {
            match store.drop_event_pages(chunk).await {
                Ok(n) => pruned += n,
                Err(e) => tracing::warn!(error = %e, "dropping old events from the log failed"),
            }
        }
        let before = clock.now().saturating_sub(config.retention);
        match store.prune_event_pages(before).await {
            Ok(n) => pruned += n,
            Err(e) => tracing::warn!(error = %e, "pruning the event log failed"),
        }
        if pruned > 0 {
            tracing::debug!(pruned, "pruned the event log");
        }
    }
}

async fn run_writer(
    store: Arc<dyn EventLogStore>,
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
            let (pages, counts) = paginate(&events, clock.now());
            let result = write_with_retry(&*store, &pages, events.len(), &shutdown).await;
            for ack in barriers {
                let _ = ack.send(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(StoreError::Database(e.to_string())),
                });
            }
            if result.is_ok() {
                let mut out = Vec::new();
                for (page, &count) in pages.iter().zip(&counts) {
                    windows.record(page.key(), count, page.at, &mut out);
                }
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

/// A page takes no more messages once it holds this many bytes, so that a
/// session sending large messages fast never makes a row the database
/// refuses.
const PAGE_BYTES: usize = 1 << 20;

/// A batch's events as pages, one per session unless its messages fill
/// more than one, in the order of the batch; and how many events each page
/// holds.
fn paginate(events: &[StoredEvent], at: Timestamp) -> (Vec<EventPage>, Vec<u32>) {
    let mut open: HashMap<SessionId, usize> = HashMap::new();
    let (mut pages, mut counts) = (Vec::<EventPage>::new(), Vec::new());
    for e in events {
        let i = match open.get(&e.session_id) {
            Some(&i) if pages[i].body.len() < PAGE_BYTES => i,
            _ => {
                pages.push(EventPage::new(e.session_id, at));
                counts.push(0);
                open.insert(e.session_id, pages.len() - 1);
                pages.len() - 1
            }
        };
        pages[i].push(e.stream, e.seq, &e.message);
        counts[i] += 1;
    }
    (pages, counts)
}

/// Writes a batch, retrying until the store takes it: the queue behind it
/// fills meanwhile and slows the streams down instead of losing events.
/// Only at shutdown does it give up, after a grace period, and say so.
async fn write_with_retry(
    store: &dyn EventLogStore,
    pages: &[EventPage],
    events: usize,
    shutdown: &CancellationToken,
) -> StoreResult<()> {
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1u32;
    let mut give_up_at = None;
    loop {
        let e = match store.append_event_pages(pages).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if attempt == 1 || attempt.is_multiple_of(40) {
            tracing::warn!(error = %e, attempt, count = events, "appending to the event log failed; retrying");
        }
        if shutdown.is_cancelled() {
            let at = *give_up_at
                .get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_secs(5));
            if tokio::time::Instant::now() >= at {
                tracing::error!(error = %e, count = events, "the store stayed unavailable at shutdown; events lost");
                return Err(e);
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
        attempt += 1;
    }
}

/// Each session's newest logged pages, oldest first: enough to tell which
/// pages fall out of a session's window without reading the log. It covers
/// what this process wrote; pages from before a restart leave by time
/// alone.
#[derive(Debug)]
struct SessionWindows {
    keep: u32,
    sessions: HashMap<SessionId, Window>,
}

#[derive(Debug, Default)]
struct Window {
    pages: VecDeque<Page>,
    events: u32,
}

#[derive(Debug)]
struct Page {
    id: PageId,
    events: u32,
    at: Timestamp,
}

impl SessionWindows {
    fn new(keep: u32) -> Self {
        SessionWindows {
            keep,
            sessions: HashMap::new(),
        }
    }

    /// Takes in a page just written; adds to `out` the pages of its session
    /// that no longer fit the window.
    fn record(&mut self, key: PageKey, events: u32, at: Timestamp, out: &mut Vec<PageKey>) {
        let window = self.sessions.entry(key.session_id).or_default();
        window.pages.push_back(Page {
            id: key.page,
            events,
            at,
        });
        window.events += events;
        while let Some(oldest) = window.pages.front() {
            if window.events - oldest.events < self.keep {
                break;
            }
            window.events -= oldest.events;
            out.push(PageKey {
                session_id: key.session_id,
                page: oldest.id,
            });
            window.pages.pop_front();
        }
    }

    /// Forgets pages written before `before`: the store prunes those by
    /// time, and sessions that went quiet must not be remembered forever.
    fn forget_before(&mut self, before: Timestamp) {
        self.sessions.retain(|_, window| {
            while window.pages.front().is_some_and(|p| p.at < before) {
                if let Some(page) = window.pages.pop_front() {
                    window.events -= page.events;
                }
            }
            !window.pages.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamKind;

    fn event(session: SessionId, stream: StreamId, seq: u64) -> StoredEvent {
        StoredEvent {
            session_id: session,
            stream,
            seq,
            message: format!("message {seq}").into(),
        }
    }

    #[test]
    fn a_batch_becomes_one_page_per_session_that_reads_back_in_order() {
        let (a, b) = (SessionId::generate(), SessionId::generate());
        let (s1, s2) = (
            StreamId::generate(StreamKind::Request),
            StreamId::generate(StreamKind::Standalone),
        );
        let batch = [
            event(a, s1, 1),
            event(b, s2, 1),
            event(a, s2, 1),
            event(a, s1, 2),
        ];
        let (pages, counts) = paginate(&batch, Timestamp::from_millis(7));
        assert_eq!(counts, [3, 1]);
        assert!(pages.iter().all(|p| p.id.0 > s2.n), "pages follow streams");
        let back: Vec<Vec<StoredEvent>> = pages
            .into_iter()
            .map(|p| p.into_events().unwrap())
            .collect();
        assert_eq!(
            back,
            [
                vec![batch[0].clone(), batch[2].clone(), batch[3].clone()],
                vec![batch[1].clone()]
            ]
        );
    }

    #[test]
    fn a_session_sending_large_messages_fills_several_pages() {
        let session = SessionId::generate();
        let stream = StreamId::generate(StreamKind::Request);
        let big = |seq| StoredEvent {
            message: vec![b'x'; PAGE_BYTES * 3 / 5].into(),
            ..event(session, stream, seq)
        };
        let (pages, counts) = paginate(&[big(1), big(2), big(3)], Timestamp::from_millis(1));
        assert_eq!(counts, [2, 1]);
        assert!(pages[0].id < pages[1].id);
        let seqs: Vec<u64> = pages
            .into_iter()
            .flat_map(|p| p.into_events().unwrap())
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[test]
    fn a_session_keeps_its_newest_events_and_drops_whole_older_pages() {
        let (a, b) = (SessionId::generate(), SessionId::generate());
        let key = |session_id, n| PageKey {
            session_id,
            page: PageId(n),
        };
        let at = Timestamp::from_millis;
        let mut windows = SessionWindows::new(3);
        let mut out = Vec::new();
        windows.record(key(a, 1), 2, at(1), &mut out);
        windows.record(key(b, 2), 1, at(2), &mut out);
        windows.record(key(a, 3), 1, at(3), &mut out);
        assert!(out.is_empty(), "{out:?}");
        // a's first page (2 events) leaves once 3 newer ones are in; b's
        // single event stays.
        windows.record(key(a, 4), 2, at(4), &mut out);
        assert_eq!(out, [key(a, 1)]);
        out.clear();
        windows.record(key(a, 5), 1, at(5), &mut out);
        assert_eq!(out, [key(a, 3)]);

        // Quiet sessions are forgotten once their pages are past the window.
        windows.forget_before(at(3));
        assert!(!windows.sessions.contains_key(&b));
        assert_eq!(windows.sessions[&a].events, 3);
        windows.forget_before(at(100));
        assert!(windows.sessions.is_empty());
    }
}
