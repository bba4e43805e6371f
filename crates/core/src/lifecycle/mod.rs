//! The session lifecycle and the services beside it, started and stopped
//! together as one [`Lifecycle`]:
//!
//! * [`SessionManager`] (`manager`) keeps the registry of active sessions
//!   (`registry`): creation, lookup, touch, expiry (`expiry`) and ends,
//!   written by the session writer (`session_writer`); every session that
//!   leaves the registry is reported once to the end-of-session subscribers
//!   (`ends`), and displays watch a lossy broadcast (`observe`);
//! * [`EventLog`] (`event_log`): the durable log of server-to-client
//!   stream events, for resumable streams;
//! * [`RequestLog`] (`request_log`): admission of requests and the
//!   write-behind log of them;
//! * [`Reclaim`] (`reclaim`): reconnect tokens, issued and redeemed, with
//!   the limiter of failed attempts (`limiter`);
//! * [`StatelessClients`] (`stateless_clients`): the identities of
//!   2026-07-28 clients, which have no session;
//! * [`Tasks`] (`tasks`): tasks of the tasks extension, durable, with
//!   their owners, statuses and results.
//!
//! The assembly hands each consumer the services it uses.

mod active;
mod config;
mod ends;
mod error;
mod event_log;
mod expiry;
mod figures;
mod limiter;
mod manager;
mod observe;
mod reclaim;
mod registry;
mod request_log;
mod session_writer;
mod stateless_clients;
mod tasks;

use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use active::ActiveSession;
pub use config::{EventLogConfig, LifecycleConfig, ReconnectConfig, RequestLogConfig, TaskConfig};
pub use ends::{EndKind, EndSubscriber, SessionEnded};
pub use error::{LifecycleError, ReconnectError};
pub use event_log::EventLog;
pub use limiter::{address_key, RateLimited, RateLimiter};
pub use manager::{Created, SessionManager, StreamGuard};
pub use observe::LifecycleEvent;
pub use reclaim::{Reclaim, Reconnected};
pub use registry::{LocalRegistry, Registry};
pub use request_log::RequestLog;
pub use stateless_clients::{client_key, ClientActivity, StatelessClients};
pub use tasks::{TaskEnded, TaskHandle, TaskView, Tasks};

use crate::clock::SharedClock;
use crate::store::Store;
use crate::token::{SigningKey, TokenSigner};
use manager::ManagerParts;
use observe::Observers;

/// The session lifecycle and its services, running.
#[derive(Clone)]
pub struct Lifecycle {
    /// The registry of active sessions, and their creation, expiry and ends.
    pub sessions: Arc<SessionManager>,
    /// The durable log of server-to-client stream events.
    pub event_log: Arc<EventLog>,
    /// Admission of requests, and the log of them.
    pub request_log: Arc<RequestLog>,
    /// Reconnect tokens.
    pub reclaim: Arc<Reclaim>,
    /// Stateless clients' identities and activity.
    pub stateless: Arc<StatelessClients>,
    /// Tasks of the tasks extension.
    pub tasks: Arc<Tasks>,
    /// Cancelled at shutdown; stops every background task.
    stop: CancellationToken,
    /// The background tasks, awaited at shutdown.
    background: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Lifecycle {
    /// Rebuilds the registry from the store (ending sessions whose deadline
    /// passed while the server was down) and starts the services and their
    /// background tasks. `ends` hear of every session that leaves the
    /// registry from now on, until and including [`Self::shutdown`].
    pub async fn start(
        store: Arc<dyn Store>,
        clock: SharedClock,
        config: LifecycleConfig,
        ends: Vec<Arc<dyn EndSubscriber>>,
    ) -> Result<Self, LifecycleError> {
        let stop = CancellationToken::new();
        let observers = Observers::default();
        let key = config
            .reconnect
            .key
            .clone()
            .unwrap_or_else(SigningKey::generate);
        let signer = Arc::new(TokenSigner::new(&key, config.reconnect.token_ttl));

        let stateless =
            StatelessClients::load(&*store, clock.clone(), &config, observers.clone()).await?;
        let (sessions, mut background) = SessionManager::start(ManagerParts {
            store: store.clone(),
            clock: clock.clone(),
            config: config.clone(),
            signer: signer.clone(),
            ends: ends::Ends::new(ends),
            observers: observers.clone(),
            shutdown: stop.clone(),
        })
        .await?;
        let (tasks, writers) = Tasks::start(
            store.clone(),
            clock.clone(),
            config.tasks.clone(),
            observers.clone(),
            stop.clone(),
        )
        .await?;
        background.extend(writers);
        let reclaim = Reclaim::new(
            sessions.clone(),
            store.clone(),
            signer,
            &config.reconnect,
            observers,
        );
        let (request_log, task) = RequestLog::start(
            store.clone(),
            clock.clone(),
            config.request_log.clone(),
            stop.clone(),
        );
        background.push(task);
        let (event_log, task) = EventLog::start(store, clock, config.event_log, stop.clone());
        background.push(task);
        Ok(Lifecycle {
            sessions,
            event_log: Arc::new(event_log),
            request_log: Arc::new(request_log),
            reclaim: Arc::new(reclaim),
            stateless: Arc::new(stateless),
            tasks,
            stop,
            background: Arc::new(Mutex::new(background)),
        })
    }

    /// Stops the background tasks after writing everything queued: pending
    /// creations and ends, the request log, the event log, task writes and
    /// the latest activity. Running tasks' work stops; they stay unfinished
    /// in the store, and the next start fails them. Then lets go of the active sessions — they stay active in
    /// the store, so they survive the restart — and tells the end-of-session
    /// subscribers so.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let background = std::mem::take(&mut *self.background.lock().expect("tasks poisoned"));
        for task in background {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a lifecycle task failed");
            }
        }
        self.sessions.flush_activity().await;
        self.sessions.unload();
    }
}
