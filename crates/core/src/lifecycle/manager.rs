//! The keeper of the registry, [`SessionManager`]: creation, lookup, touch,
//! expiry and ends of sessions. It is the only writer of session rows. The
//! request path touches sessions with atomics only; creations and ends are
//! group-committed by the session writer, activity is flushed behind,
//! expiry is deadline-ordered (see [`super::expiry`]).
//!
//! Every way a session leaves the registry — an end for any reason, or
//! shutdown letting go of it — goes through one place, which tells the
//! end-of-session subscribers ([`super::ends`]). The registry's removal
//! decides which of racing ends that is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::active::ActiveSession;
use super::config::LifecycleConfig;
use super::ends::{EndKind, Ends, SessionEnded};
use super::error::{LifecycleError, ReconnectError};
use super::expiry::Deadlines;
use super::figures::Figures;
use super::observe::{LifecycleEvent, Observers};
use super::registry::{LocalRegistry, Registry};
use super::session_writer::{self, SessionWrite};
use crate::clock::{SharedClock, Timestamp};
use crate::health::HealthReport;
use crate::ids::SessionId;
use crate::session::{
    ActivityUpdate, ClientIdentity, DisconnectReason, SessionEnd, SessionRecord, SessionStatus,
};
use crate::store::{SessionPage, SessionQuery, Store, StoreResult};
use crate::token::{IssuedToken, Redemption, TokenSigner};

/// Active sessions read per page when the registry is rebuilt at startup.
const LOAD_PAGE: u32 = 5_000;

/// A new session and the reconnect token its holder receives.
pub struct Created {
    pub session: Arc<ActiveSession>,
    pub token: IssuedToken,
}

/// What the manager is built from, handed over by the assembly.
pub(crate) struct ManagerParts {
    /// The sessions' rows, and the tokens redeemed on the session writer.
    pub(crate) store: Arc<dyn Store>,
    /// The time of activity, deadlines and ends.
    pub(crate) clock: SharedClock,
    /// The idle timeout and flush interval among others.
    pub(crate) config: LifecycleConfig,
    /// Signs a new session's first reconnect token.
    pub(crate) signer: Arc<TokenSigner>,
    /// Who hears of every session that leaves the registry.
    pub(crate) ends: Ends,
    /// Live observers; they may miss events.
    pub(crate) observers: Observers,
    /// Cancelled at shutdown; stops the manager's tasks.
    pub(crate) shutdown: CancellationToken,
}

/// The registry of active sessions and everything that changes it.
pub struct SessionManager {
    /// The sessions' rows, and the tokens redeemed on the session writer.
    store: Arc<dyn Store>,
    /// The time of activity, deadlines and ends.
    clock: SharedClock,
    /// The idle timeout and flush interval among others.
    config: LifecycleConfig,
    /// Where the active sessions live.
    registry: Box<dyn Registry>,
    /// One expiry entry per active session.
    deadlines: Deadlines,
    /// Sessions touched since the last activity flush.
    dirty: Mutex<Vec<Arc<ActiveSession>>>,
    /// The session writer's queue.
    writes: mpsc::Sender<SessionWrite>,
    /// Signs a new session's first reconnect token.
    signer: Arc<TokenSigner>,
    /// Counters and the connection window of the health report.
    figures: Figures,
    /// Who hears of every session that leaves the registry.
    ends: Ends,
    /// Live observers; they may miss events.
    observers: Observers,
    /// Set once shutdown let go of the registry: a session put (back) in
    /// after that is let go of at once, so it too is reported.
    unloading: AtomicBool,
    /// Cancelled at shutdown; stops the reaper and the activity flusher.
    shutdown: CancellationToken,
}

impl SessionManager {
    /// Rebuilds the registry from the store, ends sessions whose deadline
    /// passed while the server was down, and starts the session writer,
    /// the reaper and the activity flusher.
    pub(crate) async fn start(
        parts: ManagerParts,
    ) -> Result<(Arc<Self>, Vec<JoinHandle<()>>), LifecycleError> {
        let ManagerParts {
            store,
            clock,
            config,
            signer,
            ends,
            observers,
            shutdown,
        } = parts;
        let now = clock.now();
        let registry = LocalRegistry::default();
        let deadlines = Deadlines::default();
        let mut overdue = Vec::new();
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
                    registry.claim(ActiveSession::new(record));
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
        let figures = Figures::load(&*store, now, config.health_window, config.age_bounds).await?;
        tracing::info!(
            restored = registry.count(),
            backend = store.backend(),
            "session registry loaded"
        );

        let (writes_tx, writes_rx) = mpsc::channel(4096);
        let manager = Arc::new(SessionManager {
            store: store.clone(),
            clock,
            config,
            registry: Box::new(registry),
            deadlines,
            dirty: Mutex::new(Vec::new()),
            writes: writes_tx,
            signer,
            figures,
            ends,
            observers,
            unloading: AtomicBool::new(false),
            shutdown: shutdown.clone(),
        });
        let tasks = vec![
            tokio::spawn(session_writer::run_session_writer(
                store, writes_rx, shutdown,
            )),
            tokio::spawn(manager.clone().run_reaper()),
            tokio::spawn(manager.clone().run_activity_flusher()),
        ];
        Ok((manager, tasks))
    }

    pub fn config(&self) -> &LifecycleConfig {
        &self.config
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Lifecycle events from now on, for displays. A receiver that falls
    /// behind loses the oldest events (and is told so), never slowing
    /// sessions down; what must hear every end subscribes to the
    /// end-of-session notification instead.
    pub fn observe(&self) -> broadcast::Receiver<LifecycleEvent> {
        self.observers.subscribe()
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

        let live = self.install(ActiveSession::new(record), now);
        self.figures.on_connect(now);
        metrics::counter!("sessiongate_sessions_created_total").increment(1);
        if self.observers.listening() {
            self.observers
                .emit(LifecycleEvent::Created(Box::new(live.record())));
        }
        Ok(Created {
            session: live,
            token,
        })
    }

    /// Puts a session in the registry with a deadline counted from `from`;
    /// returns the one the registry holds. After shutdown let go of the
    /// registry, the session is let go of at once (and reported so).
    fn install(&self, live: Arc<ActiveSession>, from: Timestamp) -> Arc<ActiveSession> {
        let live = self.registry.claim(live);
        self.deadlines
            .push(from.saturating_add(self.config.idle_timeout), live.id());
        if self.unloading.load(Ordering::SeqCst) {
            if let Some(late) = self.registry.release(live.id()) {
                self.depart(&late, EndKind::Unloaded, self.clock.now());
            }
        }
        live
    }

    /// The active session with this id, if any.
    pub fn active(&self, id: SessionId) -> Option<Arc<ActiveSession>> {
        self.registry.get(id)
    }

    pub fn active_count(&self) -> usize {
        self.registry.count()
    }

    /// Records one request on a session.
    pub fn touch(&self, session: &Arc<ActiveSession>) {
        if session.touch(self.clock.now(), 1) {
            self.dirty
                .lock()
                .expect("dirty poisoned")
                .push(session.clone());
        }
    }

    /// Records a sign of life that is not a request (a notification, a
    /// response to the server, a stream opening or closing).
    pub fn keep_alive(&self, session: &Arc<ActiveSession>) {
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
    pub fn open_stream(self: &Arc<Self>, session: Arc<ActiveSession>) -> StreamGuard {
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
        let Some(live) = self.registry.release(id) else {
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
            let last = live.last_activity();
            self.install(live, last);
            return Err(e);
        }
        self.ended(&live, &end);
        Ok(Some(final_record(&live, &end)))
    }

    fn end_of(&self, live: &ActiveSession, reason: DisconnectReason) -> SessionEnd {
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

    /// Counts an end and reports it.
    fn ended(&self, live: &ActiveSession, end: &SessionEnd) {
        metrics::counter!("sessiongate_sessions_ended_total", "reason" => end.reason.as_str())
            .increment(1);
        self.figures.on_end(live.connected_at(), end.at);
        self.depart(live, EndKind::Ended(end.reason), end.at);
        if self.observers.listening() {
            self.observers
                .emit(LifecycleEvent::Ended(Box::new(final_record(live, end))));
        }
    }

    /// The one place a session that left the registry is reported: called
    /// only by whoever released it, so once per departure.
    fn depart(&self, live: &ActiveSession, kind: EndKind, at: Timestamp) {
        live.depart();
        self.ends.notify(SessionEnded {
            session_id: live.id(),
            kind,
            at,
        });
    }

    /// Disconnected sessions in the store, by the running count.
    pub fn disconnected_count(&self) -> u64 {
        self.figures.disconnected()
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
        self.figures
            .report(&*self.registry, &*self.store, self.clock.now())
            .await
    }

    /// Applies a token redemption through the session writer, so it lands
    /// after any end still queued. `None` if the token was no longer
    /// current.
    pub(crate) async fn redeem(&self, r: Redemption) -> Result<Option<u64>, ReconnectError> {
        let (ack, done) = oneshot::channel();
        self.writes
            .send(SessionWrite::Redeem(r, ack))
            .await
            .map_err(|_| ReconnectError::ShuttingDown)?;
        Ok(done.await.map_err(|_| ReconnectError::ShuttingDown)??)
    }

    /// Puts a reclaimed session back in the registry, active from now.
    pub(crate) fn revive(&self, mut record: SessionRecord, count: u64) -> Arc<ActiveSession> {
        let now = self.clock.now();
        let was_disconnected = record.status == SessionStatus::Disconnected;
        record.status = SessionStatus::Active;
        record.disconnected_at = None;
        record.disconnect_reason = None;
        record.total_duration = None;
        record.last_activity = now;
        record.reconnect_count = count;
        let live = self.install(ActiveSession::new(record), now);
        if was_disconnected {
            // A revived session leaves the disconnected count.
            self.figures.on_revive();
        }
        live
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
            let removed = self.registry.release_if(id, &|s| {
                s.open_streams() == 0 && s.last_activity().saturating_add(timeout) <= now
            });
            if let Some(live) = removed {
                // Written behind: the writer retries it until the store
                // takes it.
                let end = self.end_of(&live, DisconnectReason::Timeout);
                self.ended(&live, &end);
                tracing::debug!(session = %id, "session timed out");
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

    /// Writes the activity of sessions touched since the last flush.
    pub(crate) async fn flush_activity(&self) {
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
        if self.observers.listening() {
            self.observers.emit(LifecycleEvent::Updated(
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

    /// Lets go of every active session at shutdown, telling the
    /// end-of-session subscribers each is unloaded: they stay active in the
    /// store, resumable after the next start.
    pub(crate) fn unload(&self) {
        self.unloading.store(true, Ordering::SeqCst);
        let now = self.clock.now();
        let released = self.registry.release_all();
        for live in &released {
            self.depart(live, EndKind::Unloaded, now);
        }
        if !released.is_empty() {
            tracing::info!(
                sessions = released.len(),
                "let go of active sessions; they resume after the next start"
            );
        }
    }
}

/// An ended session's final record.
fn final_record(live: &ActiveSession, end: &SessionEnd) -> SessionRecord {
    let mut record = live.record();
    record.status = SessionStatus::Disconnected;
    record.disconnected_at = Some(end.at);
    record.disconnect_reason = Some(end.reason);
    record.total_duration = Some(end.total_duration);
    record
}

/// Keeps a session's stream counted as open until dropped.
pub struct StreamGuard {
    manager: Arc<SessionManager>,
    session: Arc<ActiveSession>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.session.stream_closed();
        self.manager.keep_alive(&self.session);
    }
}
