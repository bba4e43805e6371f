//! The durable event log of server-to-client SSE messages, for resumable
//! streams. Appends are written behind, in batches, by one task: a stream
//! hands a message to its connection without waiting for the disk (it keeps
//! the message in memory until the log has it), and a finished stream waits
//! for [`EventLog::flushed`] before it forgets its messages. A `kill -9`
//! can lose only what was queued in the last moments (one batch, gathered
//! for at most 100 ms), never
//! what a finished stream sent. The log keeps each session's newest events
//! within a retention window.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::ids::SessionId;
use crate::store::{SessionStore, StoreError, StoreResult};
use crate::stream::{StoredEvent, StreamId};

/// What the event log keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLogConfig {
    /// Off: streams still carry ids and resume while the server runs, but
    /// nothing is written (for measuring the log's cost).
    pub enabled: bool,
    /// Newest events kept per session.
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

const GROUP_MAX: usize = 1024;

impl EventLog {
    pub(crate) fn start(
        store: Arc<dyn SessionStore>,
        clock: SharedClock,
        config: EventLogConfig,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(8192);
        let pruner = tokio::spawn(run_pruner(
            store.clone(),
            clock,
            config.clone(),
            shutdown.clone(),
        ));
        let writer = run_writer(store.clone(), config.flush_interval, rx, shutdown);
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

/// Prunes the log on its own schedule, apart from the writer, so appends
/// never wait for a prune.
async fn run_pruner(
    store: Arc<dyn SessionStore>,
    clock: SharedClock,
    config: EventLogConfig,
    shutdown: CancellationToken,
) {
    let mut prune = tokio::time::interval(config.prune_interval);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = prune.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let before = clock.now().saturating_sub(config.retention);
        match store.prune_events(before, config.keep_per_session).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "pruned the event log"),
            Err(e) => tracing::warn!(error = %e, "pruning the event log failed"),
        }
    }
}

async fn run_writer(
    store: Arc<dyn SessionStore>,
    flush_interval: Duration,
    mut rx: mpsc::Receiver<Append>,
    shutdown: CancellationToken,
) {
    let mut buf = Vec::with_capacity(GROUP_MAX);
    loop {
        let closing = tokio::select! {
            n = rx.recv_many(&mut buf, GROUP_MAX) => n == 0,
            _ = shutdown.cancelled() => true,
        };
        if !closing && buf.len() < GROUP_MAX {
            // Let a batch gather: one transaction per message would cost
            // the streams more than the messages themselves.
            tokio::select! {
                _ = tokio::time::sleep(flush_interval) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        while buf.len() < GROUP_MAX * 8 {
            match rx.try_recv() {
                Ok(a) => buf.push(a),
                Err(_) => break,
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
        }
        if closing {
            return;
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
