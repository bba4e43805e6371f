//! The session lifecycle: creation, activity, liveness, expiry and end.
//!
//! [`SessionManager`] owns every active session in memory (the registry) and
//! is the only writer of session rows. The request path touches sessions
//! with atomics only; creations and ends are group-committed, activity and
//! the request log are written behind (see [`writer`]), expiry is
//! deadline-ordered (see [`expiry`]).

mod clients;
mod events;
mod expiry;
mod limiter;
mod live;
mod reconnect;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use clients::{client_key, ClientActivity};
pub use events::{EventLog, EventLogConfig};
pub use limiter::{RateLimited, RateLimiter};
pub use live::LiveSession;
pub use reconnect::{ReconnectConfig, ReconnectError, Reconnected};

use crate::clock::{SharedClock, Timestamp};
use crate::health::{
    minutes, AgeBounds, AgeDistribution, ConnectionWindow, HealthReport, RecentActivity,
    StatusBreakdown,
};
use crate::ids::SessionId;
use crate::request_log::RequestLogEntry;
use crate::session::{
    ActivityUpdate, ClientIdentity, DisconnectReason, SessionEnd, SessionRecord, SessionStatus,
};
use crate::store::{SessionPage, SessionQuery, SessionStore, StoreError, StoreResult};
use crate::store_health::{Monitored, StoreHealth};
use crate::token::{IssuedToken, TokenSigner};
use expiry::Deadlines;
use writer::SessionWrite;

/// Active sessions read per page when the registry is rebuilt at startup.
const LOAD_PAGE: u32 = 5_000;

/// Timings and sizes of the lifecycle. Every one is configurable.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleConfig {
    /// A session with no sign of life for this long is disconnected(timeout).
    pub idle_timeout: Duration,
    /// How often touched sessions' activity is written to the store.
    pub activity_flush_interval: Duration,
    pub request_log: RequestLogConfig,
    pub age_bounds: AgeBounds,
    /// The window of `connection_health`.
    pub health_window: Duration,
    pub reconnect: ReconnectConfig,
    pub event_log: EventLogConfig,
    /// Stateless clients remembered at most; past it the least recently
    /// seen is forgotten.
    pub max_stateless_clients: usize,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            idle_timeout: Duration::from_secs(300),
            activity_flush_interval: Duration::from_secs(1),
            request_log: RequestLogConfig::default(),
            age_bounds: AgeBounds::default(),
            health_window: Duration::from_secs(24 * 3600),
            reconnect: ReconnectConfig::default(),
            event_log: EventLogConfig::default(),
            max_stateless_clients: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestLogConfig {
    /// Rows that may wait for the writer before requests are slowed down.
    pub queue_capacity: usize,
    /// How long a request waits for room in a full queue before it is
    /// refused (503): the store has been failing or slow for that long.
    pub admission_wait: Duration,
    pub batch_rows: usize,
    pub flush_interval: Duration,
    pub retention: Duration,
    pub prune_interval: Duration,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        RequestLogConfig {
            queue_capacity: 65_536,
            admission_wait: Duration::from_secs(5),
            batch_rows: 1000,
            flush_interval: Duration::from_millis(100),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(3600),
        }
    }
}

/// Failure to create or end a session.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The request log's queue stayed full: the store is failing or slow.
    #[error("the request log is full; the session store is not keeping up")]
    RequestLogFull,
}

/// Something that happened to a session, for live observers.
#[derive(Debug, Clone, PartialEq)]
pub enum LifecycleEvent {
    /// The new session's record: carried, so observers can describe it even
    /// if it has already ended by the time they look.
    Created(Box<SessionRecord>),
    /// Sessions active and touched since the last activity flush: one event
    /// per flush, so a busy flush takes one slot of an observer's queue
    /// instead of one per session.
    Updated(Arc<[SessionId]>),
    /// The session's final record.
    Ended(Box<SessionRecord>),
    /// Reclaimed with a reconnect token; carries the new reconnect count.
    Reconnected(SessionId, u64),
    /// A stateless (2026-07-28) client made requests; by client key.
    ClientActive(String),
}

/// A new session and the reconnect token its holder receives.
pub struct Created {
    pub session: Arc<LiveSession>,
    pub token: IssuedToken,
}

pub struct SessionManager {
    store: Arc<dyn SessionStore>,
    store_health: Arc<StoreHealth>,
    clock: SharedClock,
    config: LifecycleConfig,
    sessions: DashMap<SessionId, Arc<LiveSession>>,
    deadlines: Deadlines,
    dirty: Mutex<Vec<Arc<LiveSession>>>,
    writes: mpsc::Sender<SessionWrite>,
    request_log: mpsc::Sender<RequestLogEntry>,
    window: Mutex<ConnectionWindow>,
    disconnected_total: AtomicU64,
    clients: clients::Clients,
    signer: TokenSigner,
    limiter: limiter::FailureLimiter,
    events: EventLog,
    observers: broadcast::Sender<LifecycleEvent>,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl SessionManager {
    /// Rebuilds the registry from the store, ends sessions whose deadline
    /// passed while the server was down, and starts the background tasks.
    pub async fn start(
        store: Arc<dyn SessionStore>,
        clock: SharedClock,
        config: LifecycleConfig,
    ) -> Result<Arc<Self>, LifecycleError> {
        let monitored = Monitored::new(store, clock.clone());
        let store_health = monitored.health().clone();
        let store: Arc<dyn SessionStore> = Arc::new(monitored);
        let now = clock.now();
        let (writes_tx, writes_rx) = mpsc::channel(4096);
        let (log_tx, log_rx) = mpsc::channel(config.request_log.queue_capacity.max(1));

        let mut overdue = Vec::new();
        let sessions = DashMap::new();
        let deadlines = Deadlines::default();
        let mut after = None;
        loop {
            let page = store.load_active(after, LOAD_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.session_id);
            for record in page {
                let deadline = record.last_activity.saturating_add(config.idle_timeout);
                if deadline <= now {
                    overdue.push(SessionEnd {
                        session_id: record.session_id,
                        at: deadline,
                        reason: DisconnectReason::Timeout,
                        total_duration: deadline.since(record.connected_at),
                        last_activity: record.last_activity,
                        request_count: record.request_count,
                    });
                } else {
                    deadlines.push(deadline, record.session_id);
                    sessions.insert(record.session_id, LiveSession::new(record));
                }
            }
        }
        if !overdue.is_empty() {
            store.end_sessions(&overdue).await?;
            tracing::info!(
                count = overdue.len(),
                "ended sessions that timed out while the server was down"
            );
        }
        let counts = store.status_counts().await?;
        let clients = clients::Clients::new(config.max_stateless_clients);
        clients.restore(
            store
                .client_requests(crate::analytics::Window {
                    since: now.saturating_sub(config.health_window),
                    until: now.saturating_add(std::time::Duration::from_millis(1)),
                })
                .await?,
        );
        let mut window = ConnectionWindow::new(config.health_window);
        window.seed(
            store
                .connection_buckets(now.saturating_sub(config.health_window))
                .await?,
        );
        tracing::info!(
            restored = sessions.len(),
            backend = store.backend(),
            "session registry loaded"
        );

        let shutdown = CancellationToken::new();
        let (events, events_task) = EventLog::start(
            store.clone(),
            clock.clone(),
            config.event_log.clone(),
            shutdown.clone(),
        );
        let key = config
            .reconnect
            .key
            .clone()
            .unwrap_or_else(crate::token::SigningKey::generate);
        let manager = Arc::new(SessionManager {
            store: store.clone(),
            store_health,
            clock: clock.clone(),
            sessions,
            deadlines,
            dirty: Mutex::new(Vec::new()),
            writes: writes_tx,
            request_log: log_tx,
            window: Mutex::new(window),
            disconnected_total: AtomicU64::new(counts.disconnected),
            clients,
            signer: TokenSigner::new(&key, config.reconnect.token_ttl),
            limiter: limiter::FailureLimiter::new(
                config.reconnect.max_failures,
                config.reconnect.failure_window,
            ),
            events,
            observers: broadcast::channel(1024).0,
            shutdown,
            tasks: Mutex::new(Vec::new()),
            config,
        });

        let tasks = vec![
            tokio::spawn(writer::run_session_writer(
                store.clone(),
                writes_rx,
                manager.shutdown.clone(),
            )),
            tokio::spawn(writer::run_request_log_writer(
                store,
                clock,
                manager.config.request_log.clone(),
                log_rx,
                manager.shutdown.clone(),
            )),
            tokio::spawn(manager.clone().run_reaper()),
            tokio::spawn(manager.clone().run_activity_flusher()),
            events_task,
        ];
        *manager.tasks.lock().expect("tasks poisoned") = tasks;
        Ok(manager)
    }

    pub fn config(&self) -> &LifecycleConfig {
        &self.config
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The store, every call to it observed by [`Self::store_health`].
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// Whether the store works, as the last calls to it found.
    pub fn store_health(&self) -> &StoreHealth {
        &self.store_health
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The durable log of server-to-client stream events.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Lifecycle events from now on. A receiver that falls behind loses the
    /// oldest events (and is told so), never slowing sessions down.
    pub fn observe(&self) -> broadcast::Receiver<LifecycleEvent> {
        self.observers.subscribe()
    }

    fn emit(&self, event: LifecycleEvent) {
        // No observers is fine.
        let _ = self.observers.send(event);
    }

    /// Creates a session with its first reconnect token; it is durable
    /// when this returns. The `initialize` that created it counts as its
    /// first request.
    pub async fn create(
        &self,
        client: ClientIdentity,
        metadata: Value,
    ) -> Result<Created, LifecycleError> {
        let now = self.clock.now();
        let session_id = SessionId::generate();
        let token = self
            .signer
            .issue(session_id, client.principal.as_deref(), now);
        let record = SessionRecord {
            session_id,
            client,
            connected_at: now,
            last_activity: now,
            status: SessionStatus::Active,
            disconnected_at: None,
            disconnect_reason: None,
            total_duration: None,
            request_count: 1,
            metadata,
            reconnect_count: 0,
            reconnect_token: Some(token.grant),
        };
        let (ack, done) = oneshot::channel();
        self.writes
            .send(SessionWrite::Create(Box::new(record.clone()), ack))
            .await
            .map_err(|_| LifecycleError::ShuttingDown)?;
        done.await.map_err(|_| LifecycleError::ShuttingDown)??;

        let live = LiveSession::new(record);
        self.sessions.insert(live.id(), live.clone());
        self.deadlines
            .push(now.saturating_add(self.config.idle_timeout), live.id());
        self.window.lock().expect("window poisoned").on_connect(now);
        metrics::counter!("sessiongate_sessions_created_total").increment(1);
        if self.observers.receiver_count() > 0 {
            self.emit(LifecycleEvent::Created(Box::new(live.record())));
        }
        Ok(Created {
            session: live,
            token,
        })
    }

    /// The active session with this id, if any.
    pub fn active(&self, id: SessionId) -> Option<Arc<LiveSession>> {
        self.sessions.get(&id).map(|s| s.clone())
    }

    pub fn active_count(&self) -> usize {
        self.sessions.len()
    }

    /// Records one request on a session.
    pub fn touch(&self, session: &Arc<LiveSession>) {
        if session.touch(self.clock.now(), 1) {
            self.dirty
                .lock()
                .expect("dirty poisoned")
                .push(session.clone());
        }
    }

    /// Records a sign of life that is not a request (a notification, a
    /// response to the server, a stream opening or closing).
    pub fn keep_alive(&self, session: &Arc<LiveSession>) {
        if session.touch(self.clock.now(), 0) {
            self.dirty
                .lock()
                .expect("dirty poisoned")
                .push(session.clone());
        }
    }

    /// Marks a server-to-client stream open for as long as the guard lives:
    /// the session does not expire meanwhile, and its idle time counts from
    /// the stream's close.
    pub fn open_stream(self: &Arc<Self>, session: Arc<LiveSession>) -> StreamGuard {
        session.stream_opened();
        StreamGuard {
            manager: self.clone(),
            session,
        }
    }

    /// Ends an active session durably. Returns its final record, or `None`
    /// if it was not active.
    pub async fn end(
        &self,
        id: SessionId,
        reason: DisconnectReason,
    ) -> Result<Option<SessionRecord>, LifecycleError> {
        let Some((_, live)) = self.sessions.remove(&id) else {
            return Ok(None);
        };
        let end = self.end_of(&live, reason);
        let (ack, done) = oneshot::channel();
        let written = match self.writes.send(SessionWrite::End(end, Some(ack))).await {
            Ok(()) => done.await.map_err(|_| LifecycleError::ShuttingDown),
            Err(_) => Err(LifecycleError::ShuttingDown),
        };
        if let Err(e) = written.and_then(|r| r.map_err(LifecycleError::from)) {
            // Not ended after all: the session goes on, in memory as in the
            // store, and its client may retry.
            let timeout = self.config.idle_timeout;
            self.sessions.entry(id).or_insert(live.clone());
            self.deadlines
                .push(live.last_activity().saturating_add(timeout), id);
            return Err(e);
        }
        let record = self.account_end(&live, &end);
        self.emit(LifecycleEvent::Ended(Box::new(record.clone())));
        Ok(Some(record))
    }

    fn end_of(&self, live: &LiveSession, reason: DisconnectReason) -> SessionEnd {
        let now = self.clock.now();
        SessionEnd {
            session_id: live.id(),
            at: now,
            reason,
            total_duration: now.since(live.connected_at()),
            last_activity: live.last_activity(),
            request_count: live.request_count(),
        }
    }

    /// Counts an end and returns the session's final record.
    fn account_end(&self, live: &LiveSession, end: &SessionEnd) -> SessionRecord {
        let (now, reason) = (end.at, end.reason);
        self.disconnected_total.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("sessiongate_sessions_ended_total", "reason" => reason.as_str())
            .increment(1);
        self.window
            .lock()
            .expect("window poisoned")
            .on_end(live.connected_at(), now);
        let mut record = live.record();
        record.status = SessionStatus::Disconnected;
        record.disconnected_at = Some(now);
        record.disconnect_reason = Some(reason);
        record.total_duration = Some(end.total_duration);
        record
    }

    /// Rows waiting in the request-log queue.
    pub fn request_log_queue_depth(&self) -> usize {
        self.request_log.max_capacity() - self.request_log.capacity()
    }

    /// Disconnected sessions in the store, by the running count.
    pub fn disconnected_count(&self) -> u64 {
        self.disconnected_total.load(Ordering::Relaxed)
    }

    /// Lets a request in if the request log can take its row: at once while
    /// the queue has room, else once it has, waiting at most
    /// `admission_wait`. A request refused here has done nothing; one let in
    /// never has its row dropped.
    pub async fn admit(&self) -> Result<(), LifecycleError> {
        if self.request_log.capacity() > 0 {
            return Ok(());
        }
        let wait = self.config.request_log.admission_wait;
        match tokio::time::timeout(wait, self.request_log.reserve()).await {
            Ok(Ok(_room)) => Ok(()),
            Ok(Err(_)) => Err(LifecycleError::ShuttingDown),
            Err(_) => {
                metrics::counter!("sessiongate_requests_refused_total", "reason" => "request_log_full")
                    .increment(1);
                Err(LifecycleError::RequestLogFull)
            }
        }
    }

    /// Queues a request-log row. Waits only when the queue is full.
    pub async fn log_request(&self, entry: RequestLogEntry) {
        if self.request_log.send(entry).await.is_err() {
            tracing::warn!("request log closed; row dropped during shutdown");
        }
    }

    /// Records a request of a stateless (2026-07-28) client; observers hear
    /// of it at most once per client per activity flush interval.
    pub fn touch_client(&self, key: &str, identity: impl FnOnce() -> ClientIdentity) {
        let every = self.config.activity_flush_interval;
        if self.clients.touch(key, self.clock.now(), every, identity)
            && self.observers.receiver_count() > 0
        {
            self.emit(LifecycleEvent::ClientActive(key.to_string()));
        }
    }

    /// A stateless client's activity record.
    pub fn client(&self, key: &str) -> Option<ClientActivity> {
        self.clients.get(key)
    }

    /// Stateless clients seen within the health window, most recent first.
    pub fn clients(&self) -> Vec<ClientActivity> {
        self.clients
            .list(self.clock.now().saturating_sub(self.config.health_window))
    }

    /// A session by id, with live figures while it is active.
    pub async fn session(&self, id: SessionId) -> StoreResult<Option<SessionRecord>> {
        if let Some(live) = self.active(id) {
            return Ok(Some(live.record()));
        }
        self.store.get_session(id).await
    }

    /// A page of sessions, with live figures for the active ones.
    pub async fn list(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        let mut page = self.store.list_sessions(query).await?;
        for record in &mut page.sessions {
            if let Some(live) = self.active(record.session_id) {
                *record = live.record();
            }
        }
        Ok(page)
    }

    /// The session health report.
    pub async fn health(&self) -> StoreResult<HealthReport> {
        let now = self.clock.now();
        let bounds = &self.config.age_bounds;
        let mut ages = AgeDistribution::default();
        // The ten latest active sessions, by last activity.
        let mut latest: Vec<SessionRecord> = Vec::with_capacity(11);
        for entry in self.sessions.iter() {
            let live = entry.value();
            let last = live.last_activity();
            ages.count(now.since(last), bounds);
            if latest.len() < 10 || last > latest[latest.len() - 1].last_activity {
                let pos = latest.partition_point(|r| r.last_activity >= last);
                latest.insert(pos, live.record());
                latest.truncate(10);
            }
        }
        latest.extend(
            self.store
                .latest_by_activity(Some(SessionStatus::Disconnected), 10)
                .await?,
        );
        latest.sort_by_key(|r| std::cmp::Reverse(r.last_activity));
        latest.truncate(10);
        let recent_activity = latest
            .into_iter()
            .map(|r| RecentActivity {
                session_id: r.session_id,
                age_minutes: minutes(r.idle(now)),
                uptime_minutes: minutes(r.disconnected_at.unwrap_or(now).since(r.connected_at)),
                client_type: r.client.client_type,
                status: r.status,
            })
            .collect();

        let active = self.sessions.len() as u64;
        let disconnected = self.disconnected_total.load(Ordering::Relaxed);
        let connection_health = self.window.lock().expect("window poisoned").report(now);
        Ok(HealthReport {
            status_breakdown: StatusBreakdown {
                active,
                disconnected,
                total: active + disconnected,
            },
            age_distribution: ages,
            connection_health,
            recent_activity,
            timestamp: now,
        })
    }

    async fn run_reaper(self: Arc<Self>) {
        loop {
            let next = self.deadlines.next();
            let sleep = match next {
                Some(deadline) => self.clock.sleep_until(deadline),
                None => Box::pin(std::future::pending()),
            };
            tokio::select! {
                _ = sleep => {}
                _ = self.deadlines.changed.notified() => continue,
                _ = self.shutdown.cancelled() => return,
            }
            self.expire_due();
        }
    }

    /// Ends every session whose real deadline has passed; re-arms the others.
    fn expire_due(&self) {
        let now = self.clock.now();
        let timeout = self.config.idle_timeout;
        for id in self.deadlines.pop_due(now) {
            let Some(live) = self.active(id) else {
                continue;
            };
            if live.open_streams() > 0 {
                self.deadlines.push(now.saturating_add(timeout), id);
                continue;
            }
            let deadline = live.last_activity().saturating_add(timeout);
            if deadline > now {
                self.deadlines.push(deadline, id);
                continue;
            }
            // Removal decides: a concurrent DELETE or touch-and-remove wins once.
            let removed = self.sessions.remove_if(&id, |_, s| {
                s.open_streams() == 0 && s.last_activity().saturating_add(timeout) <= now
            });
            if let Some((_, live)) = removed {
                // Written behind: the writer retries it until the store
                // takes it.
                let end = self.end_of(&live, DisconnectReason::Timeout);
                let record = self.account_end(&live, &end);
                tracing::debug!(session = %id, "session timed out");
                self.emit(LifecycleEvent::Ended(Box::new(record)));
                if self.writes.try_send(SessionWrite::End(end, None)).is_err() {
                    let writes = self.writes.clone();
                    tokio::spawn(async move {
                        let _ = writes.send(SessionWrite::End(end, None)).await;
                    });
                }
            }
        }
    }

    async fn run_activity_flusher(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.activity_flush_interval) => {}
                _ = self.shutdown.cancelled() => return,
            }
            self.flush_activity().await;
        }
    }

    async fn flush_activity(&self) {
        let touched = std::mem::take(&mut *self.dirty.lock().expect("dirty poisoned"));
        if touched.is_empty() {
            return;
        }
        let updates: Vec<ActivityUpdate> = touched
            .iter()
            .map(|s| {
                s.clear_dirty();
                ActivityUpdate {
                    session_id: s.id(),
                    last_activity: s.last_activity(),
                    request_count: s.request_count(),
                }
            })
            .collect();
        if self.observers.receiver_count() > 0 {
            self.emit(LifecycleEvent::Updated(
                updates.iter().map(|u| u.session_id).collect(),
            ));
        }
        if let Err(e) = self.store.record_activity(&updates).await {
            tracing::warn!(error = %e, sessions = updates.len(), "flushing activity failed; will retry");
            for s in touched {
                if s.touch(s.last_activity(), 0) {
                    self.dirty.lock().expect("dirty poisoned").push(s);
                }
            }
        }
    }

    /// Stops the background tasks after writing everything queued: pending
    /// creations and ends, the request log, and the latest activity. Active
    /// sessions stay active in the store, so they survive the restart.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks poisoned"));
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a lifecycle task failed");
            }
        }
        self.flush_activity().await;
    }
}

/// Keeps a session's stream counted as open until dropped.
pub struct StreamGuard {
    manager: Arc<SessionManager>,
    session: Arc<LiveSession>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.session.stream_closed();
        self.manager.keep_alive(&self.session);
    }
}
