//! Per-session transport state that is not part of the session record:
//! the standalone GET stream, server-to-client requests awaiting an answer,
//! the client's log level and resource subscriptions, and the requests it
//! may still cancel (`notifications/cancelled`). It goes when the
//! session leaves the lifecycle's registry: [`Peers`] subscribes to the
//! end-of-session notification.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dashmap::DashMap;
use rmcp::model::ErrorData;
use serde_json::Value;
use sessiongate_core::lifecycle::{ActiveSession, EndSubscriber, SessionEnded};
use sessiongate_core::SessionId;
use tokio::sync::{mpsc, oneshot};

use crate::jsonrpc::Id;
use crate::service::ResourceWatch;

/// The client's answer to a request the server sent it.
type Reply = Result<Value, ErrorData>;

#[derive(Default)]
pub struct PeerState {
    next_id: AtomicU64,
    pending: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    stream: Mutex<Option<mpsc::Sender<Bytes>>>,
    log_level: Mutex<Option<String>>,
    /// Each held as a watch, so a service that relays to a server asks it
    /// for the resource's updates while any client is subscribed.
    subscriptions: Mutex<HashMap<String, ResourceWatch>>,
    /// The client's requests whose handlers run, by id: a registration
    /// number (ids may be reused) and what stops the handler.
    running: Mutex<HashMap<String, (u64, oneshot::Sender<()>)>>,
    next_running: AtomicU64,
}

/// A client request whose handler runs: [`cancelled`](Self::cancelled)
/// resolves when the client cancels it. Dropped, it is no longer
/// cancellable.
pub(crate) struct Running {
    peer: Arc<PeerState>,
    key: String,
    registration: u64,
    cancelled: Option<oneshot::Receiver<()>>,
}

impl Running {
    /// Resolves once the client cancelled the request; never otherwise.
    pub(crate) async fn cancelled(&mut self) {
        let cancelled = match self.cancelled.as_mut() {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        if !cancelled {
            self.cancelled = None;
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.peer.running.lock().expect("running poisoned");
        if running
            .get(&self.key)
            .is_some_and(|(r, _)| *r == self.registration)
        {
            running.remove(&self.key);
        }
    }
}

fn key(id: &Id) -> String {
    id.to_string()
}

impl PeerState {
    /// Allocates an id for a server-to-client request and a receiver for its answer.
    pub(crate) fn expect_response(&self) -> (Id, oneshot::Receiver<Reply>) {
        let id = Value::from(format!(
            "s-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ));
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending poisoned")
            .insert(key(&id), tx);
        (id, rx)
    }

    pub(crate) fn forget(&self, id: &Id) -> bool {
        self.pending
            .lock()
            .expect("pending poisoned")
            .remove(&key(id))
            .is_some()
    }

    /// Delivers the client's answer; false if nothing waited for it.
    pub(crate) fn answer(&self, id: &Id, outcome: Reply) -> bool {
        let waiter = self
            .pending
            .lock()
            .expect("pending poisoned")
            .remove(&key(id));
        waiter.is_some_and(|w| w.send(outcome).is_ok())
    }

    /// Registers a client request whose handler starts, so the client can
    /// cancel it.
    pub(crate) fn running(self: &Arc<Self>, id: &Id) -> Running {
        let (tx, rx) = oneshot::channel();
        let registration = self.next_running.fetch_add(1, Ordering::Relaxed);
        let key = key(id);
        self.running
            .lock()
            .expect("running poisoned")
            .insert(key.clone(), (registration, tx));
        Running {
            peer: self.clone(),
            key,
            registration,
            cancelled: Some(rx),
        }
    }

    /// The client cancelled request `id`: its handler stops, if it runs.
    pub(crate) fn cancel(&self, id: &Id) -> bool {
        let stop = self
            .running
            .lock()
            .expect("running poisoned")
            .remove(&key(id));
        stop.is_some_and(|(_, tx)| tx.send(()).is_ok())
    }

    /// Installs the standalone stream, replacing (and so closing) an older one.
    pub(crate) fn attach_stream(&self, tx: mpsc::Sender<Bytes>) {
        *self.stream.lock().expect("stream poisoned") = Some(tx);
    }

    /// Sends on the standalone stream; false if none is open.
    pub fn send_on_stream(&self, frame: Bytes) -> bool {
        let stream = self.stream.lock().expect("stream poisoned").clone();
        stream.is_some_and(|s| s.try_send(frame).is_ok())
    }

    /// Sends a request to the client on the standalone stream and waits up
    /// to `timeout` for its answer: for what a server asks outside any
    /// request of the client's (a gateway's upstream asking for roots
    /// after the handshake).
    pub async fn request_on_stream(
        &self,
        method: &str,
        params: &Value,
        timeout: std::time::Duration,
    ) -> Reply {
        let (id, answer) = self.expect_response();
        let frame = crate::jsonrpc::request_bytes(&id, method, params);
        if !self.send_on_stream(Bytes::from(frame)) {
            self.forget(&id);
            return Err(ErrorData::internal_error(
                format!("{method} needs the client's standalone stream, which is not open"),
                None,
            ));
        }
        let asked = Asked::new(self, id, |frame| {
            self.send_on_stream(frame);
        });
        asked.answer(method, answer, timeout).await
    }

    pub(crate) fn log_level(&self) -> Option<String> {
        self.log_level.lock().expect("log level poisoned").clone()
    }

    pub(crate) fn set_log_level(&self, level: String) {
        *self.log_level.lock().expect("log level poisoned") = Some(level);
    }

    pub fn subscribe(&self, uri: String, watch: ResourceWatch) {
        self.subscriptions
            .lock()
            .expect("subscriptions poisoned")
            .insert(uri, watch);
    }

    pub fn unsubscribe(&self, uri: &str) {
        self.subscriptions
            .lock()
            .expect("subscriptions poisoned")
            .remove(uri);
    }

    pub fn is_subscribed(&self, uri: &str) -> bool {
        self.subscriptions
            .lock()
            .expect("subscriptions poisoned")
            .contains_key(uri)
    }
}

/// Transport state of every session that has any.
#[derive(Clone, Default)]
pub struct Peers(Arc<DashMap<SessionId, Arc<PeerState>>>);

impl Peers {
    pub fn get(&self, id: SessionId) -> Option<Arc<PeerState>> {
        self.0.get(&id).map(|p| p.clone())
    }

    /// The session's state, created if it has none. A session that ends
    /// meanwhile keeps none: its end removes what was there, and a state
    /// made after the end is dropped here at once.
    pub fn get_or_create(&self, session: &ActiveSession) -> Arc<PeerState> {
        let id = session.id();
        let peer = self.0.entry(id).or_default().clone();
        if session.departed() {
            self.remove(id);
        }
        peer
    }

    /// Drops a session's state: its stream closes and pending requests fail.
    pub fn remove(&self, id: SessionId) {
        self.0.remove(&id);
    }

    /// Sends a message on every open standalone stream.
    pub fn send_on_streams(&self, frame: Bytes) {
        for peer in self.0.iter() {
            peer.send_on_stream(frame.clone());
        }
    }

    /// Sends a message on the standalone stream of every session
    /// subscribed to the resource at `uri`.
    pub fn send_to_subscribers(&self, uri: &str, frame: Bytes) {
        for peer in self.0.iter() {
            if peer.is_subscribed(uri) {
                peer.send_on_stream(frame.clone());
            }
        }
    }

    /// Drops every session's transport state, closing all streams.
    pub fn clear(&self) {
        self.0.clear();
    }
}

impl EndSubscriber for Peers {
    fn session_ended(&self, ended: &SessionEnded) {
        self.remove(ended.session_id);
    }
}

/// A request sent to the client, its answer awaited. Given up on before
/// the answer came — timed out, or dropped because whoever asked no longer
/// needs it (a gateway's upstream withdrew its own request, the call it
/// belongs to was cancelled) — it is forgotten, and the client is told
/// with `notifications/cancelled` on the stream that carried it.
pub(crate) struct Asked<'a, F: Fn(Bytes)> {
    peer: &'a PeerState,
    id: Id,
    send: F,
}

impl<'a, F: Fn(Bytes)> Asked<'a, F> {
    pub(crate) fn new(peer: &'a PeerState, id: Id, send: F) -> Self {
        Asked { peer, id, send }
    }

    /// The client's answer, or an error once `timeout` passed or the
    /// session ended.
    pub(crate) async fn answer(
        self,
        method: &str,
        answer: oneshot::Receiver<Reply>,
        timeout: std::time::Duration,
    ) -> Reply {
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(ErrorData::internal_error("the session ended", None)),
            Err(_) => Err(ErrorData::internal_error(
                format!("the client did not answer {method} in time"),
                None,
            )),
        }
    }
}

impl<F: Fn(Bytes)> Drop for Asked<'_, F> {
    fn drop(&mut self) {
        // Still pending only if no answer came.
        if self.peer.forget(&self.id) {
            let params = serde_json::json!({
                "requestId": self.id,
                "reason": "the server no longer needs the answer",
            });
            (self.send)(Bytes::from(crate::jsonrpc::notification_bytes(
                "notifications/cancelled",
                Some(&params),
            )));
        }
    }
}
