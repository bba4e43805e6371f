//! The durable event log of server-to-client SSE messages, for resumable
//! streams. Appends are group-committed like session creations: every
//! message is durable before it is written to the client, so a client that
//! saw an event can always resume after it, even across a `kill -9`. The log
//! keeps each session's newest events within a retention window.

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
}

impl Default for EventLogConfig {
    fn default() -> Self {
        EventLogConfig {
            enabled: true,
            keep_per_session: 1000,
            retention: Duration::from_secs(15 * 60),
            prune_interval: Duration::from_secs(60),
        }
    }
}

type Append = (StoredEvent, oneshot::Sender<StoreResult<()>>);

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
        let task = tokio::spawn(run_writer(
            store.clone(),
            clock,
            config.clone(),
            rx,
            shutdown,
        ));
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

    /// Makes an event durable; returns once it is committed.
    pub async fn append(&self, event: StoredEvent) -> StoreResult<()> {
        if !self.config.enabled {
            return Ok(());
        }
        let (ack, done) = oneshot::channel();
        let closed = || StoreError::Database("the event log is shut down".into());
        self.appends
            .send((event, ack))
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

async fn run_writer(
    store: Arc<dyn SessionStore>,
    clock: SharedClock,
    config: EventLogConfig,
    mut rx: mpsc::Receiver<Append>,
    shutdown: CancellationToken,
) {
    let mut buf = Vec::with_capacity(GROUP_MAX);
    let mut prune = tokio::time::interval(config.prune_interval);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Pruning first: under steady appends it would otherwise never run.
        let closing = tokio::select! {
            biased;
            _ = prune.tick() => {
                let before = clock.now().saturating_sub(config.retention);
                match store.prune_events(before, config.keep_per_session).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(pruned = n, "pruned the event log"),
                    Err(e) => tracing::warn!(error = %e, "pruning the event log failed"),
                }
                continue;
            }
            n = rx.recv_many(&mut buf, GROUP_MAX) => n == 0,
            _ = shutdown.cancelled() => true,
        };
        if closing {
            while let Ok(a) = rx.try_recv() {
                buf.push(a);
            }
        }
        if !buf.is_empty() {
            let (events, acks): (Vec<_>, Vec<_>) = buf.drain(..).unzip();
            let result = store.append_events(&events).await;
            if let Err(e) = &result {
                tracing::error!(error = %e, count = events.len(), "appending to the event log failed");
            }
            for ack in acks {
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
