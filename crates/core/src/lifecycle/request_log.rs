//! The request log: one row per request, admitted with back-pressure and
//! written behind by one task. The writer drains a bounded queue in batches
//! of at most `batch_rows` or every `flush_interval`, and prunes old rows.
//!
//! A batch the store refuses is retried until it takes it. Meanwhile the
//! queue fills and requests wait for room, then are refused
//! ([`RequestLog::admit`]); rows are never dropped while the server runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::RequestLogConfig;
use super::error::LifecycleError;
use super::session_writer::{RETRY_FIRST, RETRY_MAX};
use crate::clock::SharedClock;
use crate::request_log::RequestLogEntry;
use crate::store::RequestLogStore;

/// How long the writer keeps retrying at shutdown before it gives up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Handle to the request log.
pub struct RequestLog {
    /// The writer's queue; its capacity is `queue_capacity`.
    rows: mpsc::Sender<RequestLogEntry>,
    /// How long [`Self::admit`] waits for room.
    admission_wait: Duration,
}

impl RequestLog {
    /// Starts the writer; it stops when `shutdown` is cancelled, after
    /// writing what was queued.
    pub(crate) fn start(
        store: Arc<dyn RequestLogStore>,
        clock: SharedClock,
        config: RequestLogConfig,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let log = RequestLog {
            rows: tx,
            admission_wait: config.admission_wait,
        };
        let task = tokio::spawn(run_writer(store, clock, config, rx, shutdown));
        (log, task)
    }

    /// Lets a request in if the log can take its row: at once while the
    /// queue has room, else once it has, waiting at most `admission_wait`.
    /// A request refused here has done nothing; one let in never has its
    /// row dropped.
    pub async fn admit(&self) -> Result<(), LifecycleError> {
        if self.rows.capacity() > 0 {
            return Ok(());
        }
        match tokio::time::timeout(self.admission_wait, self.rows.reserve()).await {
            Ok(Ok(_room)) => Ok(()),
            Ok(Err(_)) => Err(LifecycleError::ShuttingDown),
            Err(_) => {
                metrics::counter!("sessiongate_requests_refused_total", "reason" => "request_log_full")
                    .increment(1);
                Err(LifecycleError::RequestLogFull)
            }
        }
    }

    /// Queues a row. Waits only when the queue is full.
    pub async fn record(&self, entry: RequestLogEntry) {
        if self.rows.send(entry).await.is_err() {
            tracing::warn!("request log closed; row dropped during shutdown");
        }
    }

    /// Rows waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.rows.max_capacity() - self.rows.capacity()
    }
}

/// Drains the request-log queue into the store until the queue closes.
async fn run_writer(
    store: Arc<dyn RequestLogStore>,
    clock: SharedClock,
    config: RequestLogConfig,
    mut rx: mpsc::Receiver<RequestLogEntry>,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<RequestLogEntry> = Vec::with_capacity(config.batch_rows);
    let mut last_prune = None;
    loop {
        // Wait for the first row, then gather until the batch is full or the
        // flush interval since that first row has passed.
        let closing = tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, config.batch_rows) => n == 0,
            _ = shutdown.cancelled() => true,
        };
        if closing {
            while let Ok(row) = rx.try_recv() {
                batch.push(row);
                if batch.len() == config.batch_rows {
                    write_with_retry(&*store, &batch, &shutdown).await;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                write_with_retry(&*store, &batch, &shutdown).await;
            }
            return;
        }
        // Let rows gather for the flush interval without waiting on the
        // queue: a receiver parked on it is woken by every send, which
        // costs the request path a task wake-up per request under load.
        if batch.len() < config.batch_rows {
            tokio::select! {
                _ = tokio::time::sleep(config.flush_interval) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        loop {
            let room = config.batch_rows - batch.len();
            if room > 0 {
                while let Ok(row) = rx.try_recv() {
                    batch.push(row);
                    if batch.len() == config.batch_rows {
                        break;
                    }
                }
            }
            let full = batch.len() == config.batch_rows;
            write_with_retry(&*store, &batch, &shutdown).await;
            batch.clear();
            if !full {
                break;
            }
        }

        let now = clock.now();
        if last_prune.is_none_or(|at| now.since(at) >= config.prune_interval) {
            last_prune = Some(now);
            match store
                .prune_requests(now.saturating_sub(config.retention))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "pruned request log"),
                Err(e) => tracing::warn!(error = %e, "pruning the request log failed"),
            }
        }
    }
}

/// Writes a batch, retrying until the store takes it: the queue behind it
/// fills meanwhile, and requests wait for room and then are refused rather
/// than losing rows. Only at shutdown does it give up, after
/// [`SHUTDOWN_GRACE`], and then it says how many rows it lost.
async fn write_with_retry(
    store: &dyn RequestLogStore,
    rows: &[RequestLogEntry],
    shutdown: &CancellationToken,
) {
    let mut delay = RETRY_FIRST;
    let mut attempt = 1u32;
    let mut give_up_at = None;
    loop {
        let started = std::time::Instant::now();
        let written = store.insert_requests(rows).await;
        metrics::histogram!("sessiongate_request_log_flush_seconds")
            .record(started.elapsed().as_secs_f64());
        let Err(e) = written else { return };
        if attempt == 1 || attempt.is_multiple_of(40) {
            tracing::warn!(error = %e, attempt, rows = rows.len(), "writing request log failed; retrying");
        }
        if shutdown.is_cancelled() {
            let at =
                *give_up_at.get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_GRACE);
            if tokio::time::Instant::now() >= at {
                metrics::counter!("sessiongate_request_log_rows_lost_total")
                    .increment(rows.len() as u64);
                tracing::error!(
                    rows = rows.len(),
                    "the store stayed unavailable at shutdown; request-log rows lost"
                );
                return;
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
        attempt += 1;
    }
}
