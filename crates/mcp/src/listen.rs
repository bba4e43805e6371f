//! `subscriptions/listen` (2026-07-28): the long-lived streams on which a
//! client without a session hears of changes — the lists it asked about,
//! updates of the resources it named, and status changes of the tasks it
//! named (`notifications/tasks`, the tasks extension) — each message
//! tagged with the subscription's id. [`NotificationFilter`] is what a
//! client asks for and what of it the server honours; [`Listeners`] holds
//! every open stream, bounded per remote address, and delivers each
//! [`Change`] to those whose filter wants it: a task's only to its owner's
//! streams, never older news of a task after newer. The transport opens
//! the streams and publishes the catalog's changes and the tasks'; a
//! stream ends when its client disconnects, when it falls too far behind,
//! or, with a final empty result, at shutdown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use rmcp::model::ErrorData;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sessiongate_core::lifecycle::{address_key, TaskView};
use sessiongate_core::task::TaskOwner;
use sessiongate_core::TaskId;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::jsonrpc::{self, Id};
use crate::service::{Capabilities, ListKind};
use crate::tasks;

/// The `_meta` key naming the subscription a message belongs to.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// Most resource URIs one stream may name.
pub const MAX_RESOURCE_SUBSCRIPTIONS: usize = 1_000;

/// Most task ids one stream may name: each is looked up as it opens.
pub const MAX_TASK_SUBSCRIPTIONS: usize = 100;

/// Notifications a stream may have queued for its client; one that falls
/// further behind is ended, and its client listens anew and re-reads.
const QUEUED: usize = 64;

/// What changed, as a listen stream announces it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    List(ListKind),
    /// A list that changed for one stateless client alone (see
    /// [`RequestContext::stateless_client`](crate::RequestContext::stateless_client)):
    /// told only to that client's streams.
    ClientList(Arc<str>, ListKind),
    ResourceUpdated(Arc<str>),
    /// A task as it now stands (or stood when it last changed).
    Task(Arc<TaskView>),
}

/// The notifications a stream carries: what the client asked for, less
/// what the server does not offer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationFilter {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    /// The resources whose updates the client hears of, without repeats.
    pub resource_uris: Vec<String>,
    /// The tasks whose status changes the client hears of, without
    /// repeats: only its own are ever told (see [`Listening::catch_up`]).
    pub task_ids: Vec<TaskId>,
}

impl NotificationFilter {
    /// Reads `params.notifications` and keeps what `offered` can honour.
    /// Absent fields ask for nothing; a field of the wrong type, or more
    /// than [`MAX_RESOURCE_SUBSCRIPTIONS`] URIs or [`MAX_TASK_SUBSCRIPTIONS`]
    /// task ids, is refused. A string that cannot be a task id names no
    /// task, so it is not honoured.
    pub fn honoured(params: &Value, offered: Capabilities) -> Result<Self, ErrorData> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Requested {
            #[serde(default)]
            tools_list_changed: bool,
            #[serde(default)]
            prompts_list_changed: bool,
            #[serde(default)]
            resources_list_changed: bool,
            #[serde(default)]
            resource_subscriptions: Vec<String>,
            #[serde(default)]
            task_ids: Vec<String>,
        }
        let Some(notifications) = params.get("notifications").filter(|n| n.is_object()) else {
            return Err(ErrorData::invalid_params(
                "params.notifications must be an object naming the notifications to listen for",
                None,
            ));
        };
        let requested = Requested::deserialize(notifications)
            .map_err(|e| ErrorData::invalid_params(format!("params.notifications: {e}"), None))?;
        at_most(
            "resourceSubscriptions",
            "resources",
            requested.resource_subscriptions.len(),
            MAX_RESOURCE_SUBSCRIPTIONS,
        )?;
        at_most(
            "taskIds",
            "tasks",
            requested.task_ids.len(),
            MAX_TASK_SUBSCRIPTIONS,
        )?;
        let mut task_ids = Vec::new();
        for id in requested.task_ids.iter().filter_map(|id| id.parse().ok()) {
            if !task_ids.contains(&id) {
                task_ids.push(id);
            }
        }
        let mut resource_uris = Vec::new();
        if offered.resources {
            for uri in requested.resource_subscriptions {
                if !resource_uris.contains(&uri) {
                    resource_uris.push(uri);
                }
            }
        }
        Ok(NotificationFilter {
            tools: requested.tools_list_changed,
            prompts: requested.prompts_list_changed && offered.prompts,
            resources: requested.resources_list_changed && offered.resources,
            resource_uris,
            task_ids,
        })
    }

    pub fn wants(&self, change: &Change) -> bool {
        match change {
            Change::List(list) | Change::ClientList(_, list) => match list {
                ListKind::Tools => self.tools,
                ListKind::Prompts => self.prompts,
                ListKind::Resources => self.resources,
            },
            Change::ResourceUpdated(uri) => self.resource_uris.iter().any(|u| **u == **uri),
            Change::Task(view) => self.task_ids.contains(&view.record.task_id),
        }
    }

    /// The acknowledgement's `notifications`: only what is honoured.
    pub fn to_json(&self) -> Value {
        let mut honoured = Map::new();
        for (key, on) in [
            ("toolsListChanged", self.tools),
            ("promptsListChanged", self.prompts),
            ("resourcesListChanged", self.resources),
        ] {
            if on {
                honoured.insert(key.into(), json!(true));
            }
        }
        if !self.resource_uris.is_empty() {
            honoured.insert("resourceSubscriptions".into(), json!(self.resource_uris));
        }
        if !self.task_ids.is_empty() {
            let ids: Vec<String> = self.task_ids.iter().map(TaskId::to_string).collect();
            honoured.insert("taskIds".into(), json!(ids));
        }
        Value::Object(honoured)
    }
}

/// Refuses a filter whose `field` names more than `limit` `things`.
fn at_most(field: &str, things: &str, count: usize, limit: usize) -> Result<(), ErrorData> {
    if count <= limit {
        return Ok(());
    }
    Err(ErrorData::invalid_params(
        format!("params.notifications.{field} names {count} {things}; the limit is {limit}"),
        Some(json!({ "count": count, "limit": limit })),
    ))
}

/// The first message of a stream, before any of its notifications.
pub fn acknowledgement(subscription: &Id, filter: &NotificationFilter) -> Bytes {
    let params = json!({
        "_meta": { META_SUBSCRIPTION_ID: subscription },
        "notifications": filter.to_json(),
    });
    Bytes::from(jsonrpc::notification_bytes(
        "notifications/subscriptions/acknowledged",
        Some(&params),
    ))
}

/// A change as the notification a stream carries; a task's suggests
/// polling every `poll_interval`, as `tasks/get` does.
fn notification(subscription: &Id, change: &Change, poll_interval: Duration) -> Bytes {
    let meta = json!({ META_SUBSCRIPTION_ID: subscription });
    let (method, params) = match change {
        Change::List(kind) | Change::ClientList(_, kind) => {
            (kind.notification(), json!({ "_meta": meta }))
        }
        Change::ResourceUpdated(uri) => (
            "notifications/resources/updated",
            json!({ "_meta": meta, "uri": &**uri }),
        ),
        Change::Task(view) => {
            let mut params = tasks::detailed(view, poll_interval);
            params["_meta"] = meta;
            ("notifications/tasks", params)
        }
    };
    Bytes::from(jsonrpc::notification_bytes(method, Some(&params)))
}

/// Why a stream was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "this address holds {limit} subscriptions/listen streams, the most it may; close one first"
    )]
    TooMany { limit: usize },
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Every open listen stream.
#[derive(Clone)]
pub struct Listeners(Arc<Shared>);

struct Shared {
    per_address: usize,
    /// What task notifications suggest, as `tasks/get` does.
    poll_interval: Duration,
    next: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    closed: bool,
    streams: HashMap<u64, Open>,
    per_address: HashMap<IpAddr, usize>,
}

struct Open {
    subscription: Id,
    filter: NotificationFilter,
    /// Who may hear of the filter's tasks: the owner of the caller.
    owner: Option<TaskOwner>,
    /// The stateless client listening, who alone hears of its own lists.
    client: Option<Arc<str>>,
    /// How recent the news of each task told so far was
    /// ([`TaskView::recency`]); older or as old news is not told again.
    told: HashMap<TaskId, (bool, u64)>,
    address: Option<IpAddr>,
    tx: mpsc::Sender<Bytes>,
    /// The response that ends the stream gracefully.
    last: Bytes,
}

/// An open stream: what its client is sent, until it is dropped, which
/// closes the stream.
pub struct Listening {
    messages: mpsc::Receiver<Bytes>,
    open: Registration,
}

impl Listening {
    /// The stream's tasks become those of `views` (those its owner may
    /// see), and it is told how each stands now; see [`Listeners::catch_up`].
    pub fn catch_up(&self, views: &[Arc<TaskView>]) {
        self.open.listeners.catch_up(self.open.key, views);
    }

    /// The messages, ending when the stream is ended; dropping it closes
    /// the stream.
    pub fn into_stream(self) -> impl Stream<Item = Bytes> + Send + 'static {
        let Listening { messages, open } = self;
        ReceiverStream::new(messages).map(move |message| {
            let _open = &open;
            message
        })
    }
}

struct Registration {
    listeners: Listeners,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.listeners.remove(self.key);
    }
}

impl Listeners {
    /// No more than `per_address` streams open from one remote address
    /// (an IPv6 /64); task notifications suggest polling every
    /// `poll_interval`.
    pub fn new(per_address: usize, poll_interval: Duration) -> Self {
        Listeners(Arc::new(Shared {
            per_address,
            poll_interval,
            next: AtomicU64::new(0),
            state: Mutex::default(),
        }))
    }

    /// Opens a stream for `subscription`, from `address`, carrying what
    /// `filter` wants — of its tasks, those `owner` owns, and of the lists
    /// changed for one client alone, those of `client`; `last` is the
    /// response that ends it at shutdown.
    pub fn open(
        &self,
        subscription: Id,
        filter: NotificationFilter,
        owner: Option<TaskOwner>,
        client: Option<Arc<str>>,
        address: Option<IpAddr>,
        last: Bytes,
    ) -> Result<Listening, Refused> {
        let address = address.map(address_key);
        let mut state = self.0.state.lock().expect("listeners poisoned");
        if state.closed {
            return Err(Refused::ShuttingDown);
        }
        if let Some(address) = address {
            let held = state.per_address.entry(address).or_default();
            if *held >= self.0.per_address {
                return Err(Refused::TooMany {
                    limit: self.0.per_address,
                });
            }
            *held += 1;
        }
        let (tx, messages) = mpsc::channel(QUEUED);
        let key = self.0.next.fetch_add(1, Ordering::Relaxed);
        state.streams.insert(
            key,
            Open {
                subscription,
                filter,
                owner,
                client,
                told: HashMap::new(),
                address,
                tx,
                last,
            },
        );
        Ok(Listening {
            messages,
            open: Registration {
                listeners: self.clone(),
                key,
            },
        })
    }

    /// How many streams are open.
    pub fn len(&self) -> usize {
        self.0
            .state
            .lock()
            .expect("listeners poisoned")
            .streams
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tells every stream whose filter wants it (a task's change, if the
    /// stream's owner owns the task and has not heard newer news of it).
    /// A stream whose client has fallen [`QUEUED`] messages behind is
    /// ended instead.
    pub fn publish(&self, change: &Change) {
        let mut state = self.0.state.lock().expect("listeners poisoned");
        let mut behind = Vec::new();
        for (key, stream) in &mut state.streams {
            if stream.hears(change) && !stream.tell(change, self.0.poll_interval) {
                behind.push(*key);
            }
        }
        for key in behind {
            state.forget(key);
        }
    }

    /// The open streams that name tasks: each one's key, owner and tasks.
    pub(crate) fn task_streams(&self) -> Vec<(u64, TaskOwner, Vec<TaskId>)> {
        let state = self.0.state.lock().expect("listeners poisoned");
        state
            .streams
            .iter()
            .filter(|(_, stream)| !stream.filter.task_ids.is_empty())
            .filter_map(|(key, stream)| {
                let owner = stream.owner.clone()?;
                Some((*key, owner, stream.filter.task_ids.clone()))
            })
            .collect()
    }

    /// Narrows stream `key`'s tasks to those of `views` (the ones its owner
    /// may still see) and tells it how each stands, unless it has heard as
    /// recent news of it.
    pub(crate) fn catch_up(&self, key: u64, views: &[Arc<TaskView>]) {
        let mut state = self.0.state.lock().expect("listeners poisoned");
        let Some(stream) = state.streams.get_mut(&key) else {
            return;
        };
        stream
            .filter
            .task_ids
            .retain(|id| views.iter().any(|v| v.record.task_id == *id));
        let mut fell_behind = false;
        for view in views {
            let change = Change::Task(view.clone());
            if stream.hears(&change) && !stream.tell(&change, self.0.poll_interval) {
                fell_behind = true;
                break;
            }
        }
        if fell_behind {
            state.forget(key);
        }
    }

    /// Ends every stream with its final response and opens no more.
    pub fn close_all(&self) {
        let mut state = self.0.state.lock().expect("listeners poisoned");
        state.closed = true;
        for (_, stream) in state.streams.drain() {
            // A stream too far behind to take it ends without it.
            let _ = stream.tx.try_send(stream.last);
        }
        state.per_address.clear();
    }

    fn remove(&self, key: u64) {
        self.0.state.lock().expect("listeners poisoned").forget(key);
    }
}

impl Open {
    /// Whether the stream wants `change`; a task's is then counted as told.
    fn hears(&mut self, change: &Change) -> bool {
        if !self.filter.wants(change) {
            return false;
        }
        let view = match change {
            Change::Task(view) => view,
            Change::ClientList(client, _) => return self.client.as_ref() == Some(client),
            Change::List(_) | Change::ResourceUpdated(_) => return true,
        };
        if self.owner.as_ref() != Some(&view.record.owner) {
            return false;
        }
        let recency = view.recency();
        match self.told.get(&view.record.task_id) {
            Some(told) if *told >= recency => false,
            _ => {
                self.told.insert(view.record.task_id, recency);
                true
            }
        }
    }

    /// Queues `change`'s notification; false if the client is too far
    /// behind to take it.
    fn tell(&self, change: &Change, poll_interval: Duration) -> bool {
        self.tx
            .try_send(notification(&self.subscription, change, poll_interval))
            .is_ok()
    }
}

impl State {
    /// Drops a stream (its client's response then ends) and its count.
    fn forget(&mut self, key: u64) {
        let Some(stream) = self.streams.remove(&key) else {
            return;
        };
        if let Some(address) = stream.address {
            if let Some(held) = self.per_address.get_mut(&address) {
                *held -= 1;
                if *held == 0 {
                    self.per_address.remove(&address);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessiongate_core::task::{TaskRecord, TaskStatus};

    const ALL: Capabilities = Capabilities {
        resources: true,
        prompts: true,
        completions: false,
    };

    #[test]
    fn the_filter_keeps_what_is_asked_and_offered() {
        let task = TaskId::generate().to_string();
        let params = json!({ "notifications": {
            "toolsListChanged": true, "promptsListChanged": true,
            "resourceSubscriptions": ["a://1", "a://1", "a://2"],
            "taskIds": ["not-an-id", task, task] } });
        let filter = NotificationFilter::honoured(&params, ALL).unwrap();
        assert_eq!(
            filter.to_json(),
            json!({ "toolsListChanged": true, "promptsListChanged": true,
                    "resourceSubscriptions": ["a://1", "a://2"], "taskIds": [task] })
        );
        assert!(filter.wants(&Change::ResourceUpdated("a://2".into())));
        assert!(!filter.wants(&Change::ResourceUpdated("a://3".into())));
        assert!(!filter.wants(&Change::List(ListKind::Resources)));

        let no_resources = NotificationFilter::honoured(&params, Capabilities::default()).unwrap();
        assert_eq!(
            no_resources.to_json(),
            json!({ "toolsListChanged": true, "taskIds": [task] })
        );
    }

    #[test]
    fn a_malformed_or_oversized_filter_is_refused() {
        let too_many: Vec<String> = (0..=MAX_RESOURCE_SUBSCRIPTIONS)
            .map(|i| format!("a://{i}"))
            .collect();
        for params in [
            json!({}),
            json!({ "notifications": [] }),
            json!({ "notifications": { "toolsListChanged": "yes" } }),
            json!({ "notifications": { "resourceSubscriptions": too_many } }),
            json!({ "notifications": { "taskIds": [1] } }),
            json!({ "notifications": { "taskIds": vec!["t"; MAX_TASK_SUBSCRIPTIONS + 1] } }),
        ] {
            let e = NotificationFilter::honoured(&params, ALL).unwrap_err();
            assert_eq!(e.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{params}");
        }
    }

    /// A filter that asks for the tool list's changes.
    fn tools_listed() -> NotificationFilter {
        NotificationFilter {
            tools: true,
            ..NotificationFilter::default()
        }
    }

    /// What a stream was told, as JSON, once the listeners were closed.
    async fn told(listening: Listening) -> Vec<Value> {
        listening
            .into_stream()
            .map(|m| serde_json::from_slice::<Value>(&m).unwrap_or_default())
            .collect()
            .await
    }

    #[tokio::test]
    async fn streams_are_bounded_per_address_and_freed_when_dropped() {
        let listeners = Listeners::new(2, Duration::from_secs(1));
        let filter = tools_listed();
        let open = |address: &str| {
            listeners.open(
                json!(1),
                filter.clone(),
                None,
                None,
                Some(address.parse().unwrap()),
                Bytes::new(),
            )
        };
        let first = open("2001:db8::1").unwrap();
        let _second = open("2001:db8::2").unwrap();
        assert_eq!(
            open("2001:db8::3").err(),
            Some(Refused::TooMany { limit: 2 }),
            "one /64 is one address"
        );
        let _elsewhere = open("10.0.0.1").unwrap();
        drop(first);
        let _third = open("2001:db8::3").unwrap();
        assert_eq!(listeners.len(), 3);
    }

    fn view(owner: &str, id: TaskId, status: TaskStatus, changes: u64) -> Arc<TaskView> {
        let at = sessiongate_core::Timestamp::from_millis(0);
        Arc::new(TaskView {
            record: TaskRecord {
                task_id: id,
                owner: TaskOwner::Client(owner.into()),
                tool: "t".into(),
                status,
                status_message: None,
                created_at: at,
                updated_at: at,
                ttl: Duration::from_secs(60),
                result: None,
                error: None,
            },
            input_requests: Vec::new(),
            changes,
        })
    }

    #[tokio::test]
    async fn a_task_is_told_to_its_owner_and_never_older_news_after_newer() {
        let listeners = Listeners::new(1, Duration::from_secs(1));
        let id = TaskId::generate();
        let filter = NotificationFilter {
            task_ids: vec![id],
            ..NotificationFilter::default()
        };
        let owner = Some(TaskOwner::Client("mine".into()));
        let listening = listeners
            .open(json!("s"), filter, owner, None, None, Bytes::new())
            .unwrap();
        let publish = |v| listeners.publish(&Change::Task(v));
        publish(view("theirs", id, TaskStatus::InputRequired, 1));
        publish(view("mine", id, TaskStatus::InputRequired, 1));
        // Already told, or older: a snapshot taken before that change.
        publish(view("mine", id, TaskStatus::InputRequired, 1));
        listening.catch_up(&[view("mine", id, TaskStatus::Working, 0)]);
        publish(view("mine", TaskId::generate(), TaskStatus::Working, 2));
        publish(view("mine", id, TaskStatus::Completed, 2));
        // A finished task is told once: its last news.
        publish(view("mine", id, TaskStatus::Completed, 0));
        publish(view("mine", id, TaskStatus::Working, 3));
        listeners.close_all();
        let told = told(listening).await;
        let statuses: Vec<&str> = told
            .iter()
            .filter_map(|m| m["params"]["status"].as_str())
            .collect();
        assert_eq!(statuses, ["input_required", "completed"], "{told:?}");
        assert!(told
            .iter()
            .take(2)
            .all(|m| m["method"] == "notifications/tasks"
                && m["params"]["taskId"] == id.to_string()
                && m["params"]["_meta"][META_SUBSCRIPTION_ID] == "s"));
    }

    #[tokio::test]
    async fn a_list_changed_for_one_client_is_told_to_its_streams_alone() {
        let listeners = Listeners::new(4, Duration::from_secs(1));
        let filter = tools_listed();
        let open = |client: Option<&str>| {
            listeners
                .open(
                    json!("s"),
                    filter.clone(),
                    None,
                    client.map(Arc::from),
                    None,
                    Bytes::new(),
                )
                .unwrap()
        };
        let (mine, theirs, session) = (open(Some("|a")), open(Some("|b")), open(None));
        listeners.publish(&Change::ClientList("|a".into(), ListKind::Tools));
        // Not asked for: prompts.
        listeners.publish(&Change::ClientList("|a".into(), ListKind::Prompts));
        listeners.publish(&Change::List(ListKind::Tools));
        listeners.close_all();
        let methods = |listening: Listening| async move {
            told(listening)
                .await
                .iter()
                .filter_map(|m| m["method"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
        };
        let tools = "notifications/tools/list_changed";
        assert_eq!(methods(mine).await, [tools, tools]);
        assert_eq!(methods(theirs).await, [tools]);
        assert_eq!(methods(session).await, [tools]);
    }

    #[tokio::test]
    async fn a_stream_too_far_behind_is_ended() {
        let listeners = Listeners::new(1, Duration::from_secs(1));
        let filter = tools_listed();
        let listening = listeners
            .open(json!("s"), filter, None, None, None, Bytes::new())
            .unwrap();
        for _ in 0..=QUEUED {
            listeners.publish(&Change::List(ListKind::Tools));
        }
        assert!(listeners.is_empty());
        let received = listening.into_stream().count().await;
        assert_eq!(received, QUEUED, "what was queued, then the end");
    }
}
