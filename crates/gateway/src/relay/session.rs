//! One upstream session's place and its life: the slot a client session
//! (or stateless client, or everyone in shared mode) holds, opened lazily
//! with the client's own `initialize` — from the stored mapping after a
//! restart — healed when found closed, restored (log level,
//! subscriptions) and saved as an [`UpstreamMapping`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rmcp::model::ErrorData;
use serde_json::{json, Value};
use sessiongate_core::upstream::{UpstreamEvent, UpstreamMapping};
use sessiongate_core::Timestamp;
use sessiongate_mcp::service::{Catalog, ListKind};
use sessiongate_mcp::RequestContext;

use super::exchange::{pump, Backlog};
use super::{Key, Upstream, UPSTREAM_REVISIONS};
use crate::link::{Link, LinkError, OutboundId};

/// One upstream session's place: its link once opened, and what must be
/// restored on a new one.
pub(super) struct Slot {
    pub(super) key: Key,
    pub(super) conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    pub(super) state: Mutex<SlotState>,
    /// Requests in flight on it, oldest first.
    pub(super) in_flight: Mutex<Vec<OutboundId>>,
    /// Set when its client session ended (or the gateway stops).
    pub(super) ended: AtomicBool,
    /// By the lifecycle's clock, for the pool's idle expiry.
    pub(super) last_used: Mutex<Timestamp>,
    /// What its own upstream session offers, once that changed its lists
    /// (a client session's own child): its client's catalog, until the
    /// next upstream session.
    pub(super) listing: RwLock<Option<Arc<Catalog>>>,
    /// Re-reads of `listing` asked for (see `exchange::rerun`).
    pub(super) relist_wanted: Arc<AtomicUsize>,
}

#[derive(Default)]
pub(super) struct SlotState {
    /// Whether the stored mapping was looked for (restored sessions).
    pub(super) loaded: bool,
    /// Whether an upstream session was held before: the next is a restart.
    pub(super) had_session: bool,
    pub(super) initialize_params: Option<Value>,
    pub(super) resume: Option<String>,
    pub(super) protocol_version: Option<String>,
    pub(super) log_level: Option<String>,
    pub(super) subscriptions: Vec<String>,
}

/// An open upstream session.
pub(super) struct Conn {
    pub(super) link: Arc<dyn Link>,
    /// Whether it answered a request: losing one that did is no sign of a
    /// crash loop.
    pub(super) answered: AtomicBool,
    /// How far its pump has got through what the upstream sent (see
    /// [`Upstream::call`]).
    pub(super) backlog: Arc<Backlog>,
}

impl Slot {
    pub(super) fn new(key: Key, now: Timestamp) -> Slot {
        Slot {
            key,
            conn: tokio::sync::Mutex::new(None),
            state: Mutex::new(SlotState::default()),
            in_flight: Mutex::new(Vec::new()),
            last_used: Mutex::new(now),
            ended: AtomicBool::new(false),
            listing: RwLock::new(None),
            relist_wanted: Arc::default(),
        }
    }

    pub(super) fn listing(&self) -> Option<Arc<Catalog>> {
        self.listing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets (or with `None` forgets) the slot's own listing; whether it
    /// had one.
    pub(super) fn set_listing(&self, listing: Option<Arc<Catalog>>) -> bool {
        let mut current = self.listing.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *current, listing).is_some()
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn in_flight(&self) -> std::sync::MutexGuard<'_, Vec<OutboundId>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request in flight that the upstream's unrelated messages go to.
    pub(super) fn latest(&self) -> Option<OutboundId> {
        self.in_flight().last().copied()
    }

    pub(super) fn touch(&self, now: Timestamp) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    pub(super) fn idle_at(&self, now: Timestamp) -> Duration {
        now.since(*self.last_used.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Forgets `conn` if it is still the slot's, so the next use opens a
    /// new upstream session. Returns whether it was: of the requests a lost
    /// session fails, one reports the loss.
    pub(super) async fn discard(&self, conn: &Arc<Conn>) -> bool {
        let mut current = self.conn.lock().await;
        let current_one = current.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn));
        if current_one {
            current.take();
            self.state().had_session = true;
        }
        drop(current);
        conn.link.close().await;
        current_one
    }

    /// Ends the upstream session, if one is open, for good: a call still
    /// running on it is not healed onto a new one.
    pub(super) async fn close(&self) {
        self.ended.store(true, Ordering::Release);
        let conn = self.conn.lock().await.take();
        if let Some(conn) = conn {
            conn.link.close().await;
        }
    }
}

impl Upstream {
    /// The `initialize` params sent for the client `ctx` serves: its own
    /// `clientInfo` and capabilities.
    pub(super) fn initialize_params(ctx: &RequestContext) -> Value {
        let identity = ctx.identity();
        json!({
            "protocolVersion": UPSTREAM_REVISIONS[0],
            "capabilities": identity.client_capabilities,
            "clientInfo": {
                "name": identity.client_name.as_deref().unwrap_or("unknown"),
                "version": identity.client_version.as_deref().unwrap_or("0"),
            },
        })
    }

    /// Makes sure the slot knows how to initialize its upstream session:
    /// from the store for a session restored after a restart, else from
    /// the client.
    pub(super) async fn prepare(&self, slot: &Slot, ctx: &RequestContext) {
        if slot.state().initialize_params.is_some() {
            return;
        }
        let stored = match &slot.key {
            Key::Session(id) if !slot.state().loaded => {
                match self.store.upstream_mapping(*id, &self.name).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(upstream = %self.name, "cannot read a session's upstream mapping: {e}");
                        None
                    }
                }
            }
            _ => None,
        };
        let mut state = slot.state();
        state.loaded = true;
        if state.initialize_params.is_some() {
            return;
        }
        match stored {
            Some(mapping) => {
                state.initialize_params = Some(mapping.initialize_params);
                state.resume = mapping.upstream_session_id;
                state.protocol_version = Some(mapping.protocol_version);
                state.log_level = mapping.log_level;
                state.subscriptions = mapping.subscriptions;
                state.had_session = true;
            }
            None => state.initialize_params = Some(Self::initialize_params(ctx)),
        }
    }

    /// The slot's upstream session, opened (or opened again) if it has none
    /// that is alive.
    pub(super) async fn connect(&self, slot: &Arc<Slot>) -> Result<Arc<Conn>, ErrorData> {
        let mut current = slot.conn.lock().await;
        if slot.ended.load(Ordering::Acquire) {
            return Err(ErrorData::internal_error(
                format!(
                    "the session ended; its upstream {} session with it",
                    self.name
                ),
                None,
            ));
        }
        if let Some(conn) = current.as_ref() {
            if !conn.link.is_closed() {
                return Ok(conn.clone());
            }
        }
        if let Some(dead) = current.take() {
            // Lost between calls: a failure like one during a call.
            let reason = dead
                .link
                .closed_reason()
                .unwrap_or_else(|| format!("upstream {}'s session ended between calls", self.name));
            dead.link.close().await;
            slot.state().had_session = true;
            self.lost(&dead, reason);
        }
        if let Err(backing_off) = self.health.may_start() {
            return Err(ErrorData::internal_error(
                format!(
                    "upstream {} is down: it failed {} times in a row; the next try is in {:.1}s. \
                     Last error: {}",
                    self.name,
                    backing_off.failures,
                    backing_off.wait.as_secs_f64(),
                    backing_off.last_error
                ),
                None,
            ));
        }
        let (params, resume, stored_version, log_level, subscriptions, restart) = {
            let mut state = slot.state();
            (
                state.initialize_params.clone().unwrap_or_else(|| json!({})),
                state.resume.take(),
                state.protocol_version.clone(),
                state.log_level.clone(),
                state.subscriptions.clone(),
                state.had_session,
            )
        };
        let limit = self.settings.max_processes;
        if self
            .processes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_err()
        {
            return Err(ErrorData::internal_error(
                format!(
                    "upstream {} already runs {limit} processes, its max_processes; \
                     end a session or raise the limit",
                    self.name
                ),
                None,
            ));
        }
        let opened = match self.connector.open(resume.as_deref()).await {
            Ok(opened) => opened,
            Err(e) => {
                self.processes.fetch_sub(1, Ordering::AcqRel);
                return Err(self.start_failed(e.to_string()));
            }
        };
        let link = opened.link;
        let backlog = Arc::new(Backlog::new(opened.incoming.sent()));
        tokio::spawn(pump(
            self.this.clone(),
            Arc::downgrade(slot),
            Arc::downgrade(&link),
            opened.incoming,
            backlog.clone(),
            Some(self.processes.clone()),
        ));
        let resumed = match (&resume, stored_version) {
            (Some(_), Some(version)) => {
                link.set_protocol_version(&version);
                Some(version)
            }
            _ => None,
        };
        let version = match resumed {
            Some(version) => version,
            None => match self.handshake(&link, &params).await {
                Ok(version) => version,
                Err(e) => {
                    link.close().await;
                    return Err(self.start_failed(e.to_string()));
                }
            },
        };
        if resume.is_none() {
            self.restore(&link, log_level.as_deref(), &subscriptions)
                .await;
        }
        slot.state().protocol_version = Some(version.clone());
        // A new upstream session offers what its server starts with: what
        // the last one had changed for its client is gone.
        if resume.is_none() && slot.set_listing(None) {
            self.announce(
                slot,
                &[ListKind::Tools, ListKind::Prompts, ListKind::Resources],
            );
        }
        if restart && resume.is_none() {
            self.health.restarts.fetch_add(1, Ordering::Relaxed);
            self.emit(UpstreamEvent::UpstreamRestarted {
                upstream: self.name.clone(),
                session_id: match slot.key {
                    Key::Session(id) => Some(id),
                    _ => None,
                },
                reason: self
                    .health
                    .last_error()
                    .map_or_else(|| "the gateway restarted".to_string(), |(e, _)| e),
                at: self.clock.now(),
            });
        }
        if resume.is_none() {
            self.save_mapping(slot, &link).await;
        }
        let conn = Arc::new(Conn {
            link,
            backlog,
            answered: AtomicBool::new(false),
        });
        *current = Some(conn.clone());
        Ok(conn)
    }

    /// Stores what a session's upstream session was opened with and what
    /// the client set on it, so it can be opened the same way again.
    pub(super) async fn save_mapping(&self, slot: &Slot, link: &Arc<dyn Link>) {
        let Key::Session(session_id) = slot.key else {
            return;
        };
        let mapping = {
            let state = slot.state();
            let (Some(params), Some(version)) = (&state.initialize_params, &state.protocol_version)
            else {
                return;
            };
            UpstreamMapping {
                session_id,
                upstream: self.name.clone(),
                upstream_session_id: link.session_id(),
                protocol_version: version.clone(),
                initialize_params: params.clone(),
                log_level: state.log_level.clone(),
                subscriptions: state.subscriptions.clone(),
                updated_at: self.clock.now(),
            }
        };
        if let Err(e) = self.store.save_upstream_mapping(&mapping).await {
            tracing::warn!(upstream = %self.name, "cannot store a session's upstream mapping: {e}");
        }
    }

    /// `initialize`, then `notifications/initialized`; the revision agreed.
    pub(super) async fn handshake(
        &self,
        link: &Arc<dyn Link>,
        params: &Value,
    ) -> Result<String, LinkError> {
        let exchange = async {
            let result = link
                .request(self.next_id(), "initialize", Some(params))
                .await?;
            let version = result["protocolVersion"].as_str().unwrap_or_default();
            if !UPSTREAM_REVISIONS.contains(&version) {
                return Err(LinkError::Transport {
                    reason: format!(
                        "upstream {} answered initialize with protocol version {version:?}, \
                         which the gateway does not speak",
                        self.name
                    ),
                    delivered: true,
                });
            }
            let version = version.to_string();
            link.set_protocol_version(&version);
            *self.server.write().unwrap_or_else(|e| e.into_inner()) =
                result.get("capabilities").cloned().unwrap_or(json!({}));
            link.notify("notifications/initialized", None).await?;
            Ok(version)
        };
        match tokio::time::timeout(self.settings.start_timeout, exchange).await {
            Ok(agreed) => agreed,
            Err(_) => Err(LinkError::Timeout(self.settings.start_timeout)),
        }
    }

    /// Sets again on a new upstream session what the client had set.
    pub(super) async fn restore(
        &self,
        link: &Arc<dyn Link>,
        log_level: Option<&str>,
        subscriptions: &[String],
    ) {
        if let Some(level) = log_level {
            let params = json!({ "level": level });
            if let Err(e) = link
                .request(self.next_id(), "logging/setLevel", Some(&params))
                .await
            {
                tracing::warn!(upstream = %self.name, "cannot restore the log level: {e}");
            }
        }
        for uri in subscriptions {
            let params = json!({ "uri": uri });
            if let Err(e) = link
                .request(self.next_id(), "resources/subscribe", Some(&params))
                .await
            {
                tracing::warn!(upstream = %self.name, uri, "cannot restore a subscription: {e}");
            }
        }
    }

    /// Records a failure to start an upstream session; the client's error.
    pub(super) fn start_failed(&self, error: String) -> ErrorData {
        tracing::warn!(upstream = %self.name, "cannot start an upstream session: {error}");
        let at = self.clock.now();
        if self.health.failed(error.clone(), at) {
            self.emit(UpstreamEvent::UpstreamDown {
                upstream: self.name.clone(),
                error: error.clone(),
                at,
            });
        }
        ErrorData::internal_error(
            format!("upstream {} cannot be started: {error}", self.name),
            None,
        )
    }
}
