//! Tasks (the MCP tasks extension): created durably, run in the
//! background, polled, cancelled, expired, and failed at startup when the
//! previous process died under them.
//!
//! * *Creation* is group-committed by the task writer: concurrent
//!   creations share one transaction, and a task is in the store before
//!   its id is returned, so a `tasks/get` right after always finds it.
//! * *Running* tasks of this process are held in memory ([`Running`]):
//!   their cancellation token, the requests they wait to have answered
//!   (`input_required`), and their status, changed one transition at a
//!   time under the task's own lock, each written — and committed — before
//!   it is shown. A finished task leaves them once its end is committed;
//!   from then on it is read from the store, except for the last
//!   [`FINISHED_KEEP`] to finish, kept as committed so that the poll
//!   which follows a task's end costs no store read.
//! * *Finished* tasks never change: the store skips updates of them, so a
//!   cancellation racing the work's end leaves whichever came first.
//! * *Restart*: every task still unfinished in the store when the
//!   lifecycle starts lost its work with the previous process; it is
//!   failed with [`RESTARTED`] before anything is served.
//! * *Expiry*: a task is gone `ttl` after its creation — unknown to
//!   readers at once, deleted by the pruner within `prune_interval`, its
//!   work stopped if it still ran.
//!
//! Only the owner ([`TaskOwner`]) sees a task; anyone else is answered as
//! for an unknown one. Displays hear of creations, and displays and the
//! clients' listen streams of status changes (each with the task as it
//! then stands), on the lifecycle's broadcast; the figures (tasks by
//! status) are counted as they go, seeded once from the store.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::TaskConfig;
use super::error::LifecycleError;
use super::observe::{LifecycleEvent, Observers};
use super::session_writer::{RETRY_FIRST, RETRY_MAX};
use crate::clock::{SharedClock, Timestamp};
use crate::ids::TaskId;
use crate::store::{StoreResult, TaskCounts, TaskPage, TaskQuery, TaskStore};
use crate::task::{
    TaskError, TaskOutcome, TaskOwner, TaskRecord, TaskStatus, TaskUpdate, INTERNAL_ERROR,
    RESTARTED,
};

/// Writes applied in one round, at most.
const GROUP_MAX: usize = 1024;
/// Expired tasks deleted per statement, at most.
const PRUNE_BATCH: u32 = 10_000;
/// Finished tasks kept in memory, the most recent ones.
const FINISHED_KEEP: usize = 1024;

/// One write for the task writer, with where its outcome goes.
enum TaskWrite {
    Insert(Box<TaskRecord>, oneshot::Sender<StoreResult<()>>),
    Update(TaskUpdate, oneshot::Sender<StoreResult<bool>>),
}

/// A task as its owner sees it: the record, and while it waits for the
/// client, the requests to answer, by key.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    pub record: TaskRecord,
    pub input_requests: Vec<(String, Value)>,
    /// How many status changes of the task this process has committed when
    /// the view was taken: of two views of an unfinished task, the one with
    /// more is the newer (timestamps may tie). A finished task never
    /// changes, so any view of it is the last.
    pub changes: u64,
}

impl TaskView {
    /// Orders views of one task: a finished one last, then by changes.
    pub fn recency(&self) -> (bool, u64) {
        (self.record.status.is_terminal(), self.changes)
    }
}

/// A task whose work runs in this process.
struct Running {
    /// What does not change while it runs: id, owner, tool, creation, ttl.
    seed: TaskRecord,
    /// Where it stands, as committed. Held across the write of a
    /// transition, so transitions of one task apply one at a time and each
    /// knows the status it leaves.
    state: tokio::sync::Mutex<Standing>,
    /// Fired to stop the work: cancelled, expired, or the server stops.
    cancel: CancellationToken,
    inputs: Mutex<Inputs>,
}

/// A running task's committed status.
#[derive(Clone, Copy)]
struct Standing {
    status: TaskStatus,
    /// When it last changed.
    at: Timestamp,
    /// Status changes so far ([`TaskView::changes`]).
    changes: u64,
}

/// Requests a running task waits to have answered.
#[derive(Default)]
struct Inputs {
    /// Keys are never reused within a task.
    next_key: u64,
    pending: BTreeMap<String, (Value, oneshot::Sender<Value>)>,
}

/// The tasks that finished last in this process, as committed. A finished
/// task never changes, so a kept record stays true; readers still check
/// its expiry, as they do for the store's rows.
#[derive(Default)]
struct Finished {
    records: HashMap<TaskId, TaskRecord>,
    /// Oldest first.
    order: VecDeque<TaskId>,
}

impl Finished {
    fn keep(&mut self, record: TaskRecord) {
        while self.order.len() >= FINISHED_KEEP {
            if let Some(oldest) = self.order.pop_front() {
                self.records.remove(&oldest);
            }
        }
        self.order.push_back(record.task_id);
        self.records.insert(record.task_id, record);
    }
}

impl Running {
    fn pending(&self) -> Vec<(String, Value)> {
        let inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        inputs
            .pending
            .iter()
            .map(|(k, (request, _))| (k.clone(), request.clone()))
            .collect()
    }

    /// The task as `update`, its `changes`th change, leaves it.
    fn view_after(&self, update: TaskUpdate, changes: u64) -> TaskView {
        let input_requests = if update.status == TaskStatus::InputRequired {
            self.pending()
        } else {
            Vec::new()
        };
        let record = TaskRecord {
            status: update.status,
            status_message: update.status_message,
            updated_at: update.at,
            result: update.result,
            error: update.error,
            ..self.seed.clone()
        };
        TaskView {
            record,
            input_requests,
            changes,
        }
    }

    fn waiting(&self) -> bool {
        let inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        !inputs.pending.is_empty()
    }
}

/// The tasks service.
pub struct Tasks {
    store: Arc<dyn TaskStore>,
    clock: SharedClock,
    config: TaskConfig,
    writes: mpsc::Sender<TaskWrite>,
    running: DashMap<TaskId, Arc<Running>>,
    finished: Mutex<Finished>,
    counts: Mutex<TaskCounts>,
    observers: Observers,
    /// The lifecycle's; stops every task's work at shutdown.
    stop: CancellationToken,
}

/// A task just created, for the code that runs its work.
#[derive(Clone)]
pub struct TaskHandle {
    tasks: Arc<Tasks>,
    running: Arc<Running>,
}

/// The task ended (finished, cancelled or expired) while it waited for
/// the client's answer.
#[derive(Debug, thiserror::Error)]
#[error("the task ended before the client answered")]
pub struct TaskEnded;

impl Tasks {
    /// Fails the tasks the previous process left unfinished, counts the
    /// stored tasks by status, and starts the writer and the pruner.
    pub(crate) async fn start(
        store: Arc<dyn TaskStore>,
        clock: SharedClock,
        config: TaskConfig,
        observers: Observers,
        stop: CancellationToken,
    ) -> Result<(Arc<Tasks>, Vec<JoinHandle<()>>), LifecycleError> {
        let failed = store.fail_unfinished_tasks(clock.now(), RESTARTED).await?;
        if failed > 0 {
            tracing::warn!(failed, "failed the tasks the previous process left running");
        }
        let counts = store.task_counts().await?;
        let (tx, rx) = mpsc::channel(GROUP_MAX * 4);
        let tasks = Arc::new(Tasks {
            store: store.clone(),
            clock,
            config,
            writes: tx,
            running: DashMap::new(),
            finished: Mutex::default(),
            counts: Mutex::new(counts),
            observers,
            stop: stop.clone(),
        });
        let writer = tokio::spawn(run_writer(store, rx, stop.clone()));
        let pruner = tokio::spawn(run_pruner(tasks.clone(), stop));
        Ok((tasks, vec![writer, pruner]))
    }

    pub fn config(&self) -> &TaskConfig {
        &self.config
    }

    /// Tasks by status, as counted since startup.
    pub fn counts(&self) -> TaskCounts {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, from: Option<TaskStatus>, to: Option<TaskStatus>) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(from) = from {
            let slot = counts.slot(from);
            *slot = slot.saturating_sub(1);
        }
        if let Some(to) = to {
            *counts.slot(to) += 1;
        }
    }

    /// Creates a task for a call of `tool` by `owner`, durably: once this
    /// returns, the task is in the store. Its work is started with
    /// [`Tasks::run`].
    pub async fn create(
        self: &Arc<Self>,
        owner: TaskOwner,
        tool: &str,
    ) -> Result<TaskHandle, LifecycleError> {
        let now = self.clock.now();
        let record = TaskRecord {
            task_id: TaskId::generate(),
            owner,
            tool: tool.to_string(),
            status: TaskStatus::Working,
            status_message: None,
            created_at: now,
            updated_at: now,
            ttl: self.config.ttl,
            result: None,
            error: None,
        };
        let (ack, done) = oneshot::channel();
        self.writes
            .send(TaskWrite::Insert(Box::new(record.clone()), ack))
            .await
            .map_err(|_| LifecycleError::ShuttingDown)?;
        done.await.map_err(|_| LifecycleError::ShuttingDown)??;
        self.count(None, Some(TaskStatus::Working));
        let running = Arc::new(Running {
            state: tokio::sync::Mutex::new(Standing {
                status: TaskStatus::Working,
                at: now,
                changes: 0,
            }),
            cancel: self.stop.child_token(),
            inputs: Mutex::default(),
            seed: record,
        });
        self.running.insert(running.seed.task_id, running.clone());
        if self.observers.listening() {
            self.observers
                .emit(LifecycleEvent::TaskCreated(Box::new(running.seed.clone())));
        }
        Ok(TaskHandle {
            tasks: self.clone(),
            running,
        })
    }

    /// Runs a task's work in the background and stores what it ends with.
    /// The work stops when the task is cancelled or expires, or the server
    /// stops (the task then stays unfinished in the store, and the next
    /// start fails it). Work that panics fails the task as an internal
    /// error.
    pub fn run<F>(&self, handle: TaskHandle, work: F)
    where
        F: Future<Output = TaskOutcome> + Send + 'static,
    {
        tokio::spawn(async move {
            let cancel = handle.running.cancel.clone();
            let mut work = tokio::spawn(work);
            let outcome = tokio::select! {
                _ = cancel.cancelled() => {
                    work.abort();
                    return;
                }
                joined = &mut work => joined.unwrap_or_else(|e| {
                    TaskOutcome::Failed(TaskError {
                        code: INTERNAL_ERROR,
                        message: if e.is_panic() {
                            "the task's work panicked".into()
                        } else {
                            "the task's work was stopped".into()
                        },
                    })
                }),
            };
            let tasks = &handle.tasks;
            let id = handle.running.seed.task_id;
            // Retried while the store fails: the end of work that ran must
            // not be lost while the server runs.
            let mut delay = RETRY_FIRST;
            loop {
                let update = TaskUpdate::finish(id, outcome.clone(), tasks.clock.now());
                match tasks.transition(&handle.running, update).await {
                    Ok(_) => break,
                    Err(LifecycleError::ShuttingDown) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, task = %id.short(), "storing a task's end failed");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = cancel.cancelled() => return,
                        }
                        delay = (delay * 2).min(RETRY_MAX);
                    }
                }
            }
            tasks.running.remove(&id);
        });
    }

    /// Moves a running task to `update.status` unless it has finished;
    /// returns whether it moved. The write is committed before the new
    /// status is shown, counted or announced; announcements of one task
    /// go out in the order of its changes, each with the task as it then
    /// stands.
    async fn transition(
        &self,
        running: &Running,
        update: TaskUpdate,
    ) -> Result<bool, LifecycleError> {
        let mut state = running.state.lock().await;
        let from = state.status;
        if from.is_terminal() || from == update.status {
            return Ok(false);
        }
        let shown = self.observers.listening().then(|| update.clone());
        let to = update.status;
        let at = update.at;
        let message = update.status_message.clone();
        let finished = to.is_terminal().then(|| TaskRecord {
            status: to,
            status_message: message.clone(),
            updated_at: at,
            result: update.result.clone(),
            error: update.error.clone(),
            ..running.seed.clone()
        });
        let applied = self.write(update).await?;
        if applied {
            if let Some(record) = finished {
                // Kept before the task leaves `running`, so no reader
                // between the two goes to the store for it.
                self.finished
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keep(record);
            }
            *state = Standing {
                status: to,
                at,
                changes: state.changes + 1,
            };
            self.count(Some(from), Some(to));
            if let Some(update) = shown {
                let view = running.view_after(update, state.changes);
                self.observers
                    .emit(LifecycleEvent::TaskChanged(Arc::new(view)));
            }
        }
        Ok(applied)
    }

    async fn write(&self, update: TaskUpdate) -> Result<bool, LifecycleError> {
        let (ack, done) = oneshot::channel();
        self.writes
            .send(TaskWrite::Update(update, ack))
            .await
            .map_err(|_| LifecycleError::ShuttingDown)?;
        Ok(done.await.map_err(|_| LifecycleError::ShuttingDown)??)
    }

    /// The task as `owner` sees it; `None` if it does not exist, has
    /// expired, or is someone else's.
    pub async fn get(&self, owner: &TaskOwner, id: TaskId) -> StoreResult<Option<TaskView>> {
        let now = self.clock.now();
        let running = self.running.get(&id).map(|r| r.clone());
        if let Some(running) = running {
            if running.seed.owner != *owner || running.seed.is_expired(now) {
                return Ok(None);
            }
            let standing = *running.state.lock().await;
            if !standing.status.is_terminal() {
                let input_requests = running.pending();
                let mut record = running.seed.clone();
                // Shown from what it waits for: a request asked or answered
                // a moment ago is in the view even before its status write.
                record.status = if input_requests.is_empty() {
                    TaskStatus::Working
                } else {
                    TaskStatus::InputRequired
                };
                record.updated_at = standing.at;
                return Ok(Some(TaskView {
                    record,
                    input_requests,
                    changes: standing.changes,
                }));
            }
        }
        let kept = self
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .records
            .get(&id)
            .cloned();
        if let Some(record) = kept {
            return Ok(
                (record.owner == *owner && !record.is_expired(now)).then(|| TaskView {
                    record,
                    input_requests: Vec::new(),
                    changes: 0,
                }),
            );
        }
        Ok(self
            .store
            .get_task(id)
            .await?
            .filter(|r| r.owner == *owner && !r.is_expired(now))
            .map(|record| TaskView {
                record,
                input_requests: Vec::new(),
                changes: 0,
            }))
    }

    /// Cancels the task if `owner` may see it and it has not finished;
    /// returns whether it exists for `owner`. Cancelling a finished task
    /// changes nothing.
    pub async fn cancel(&self, owner: &TaskOwner, id: TaskId) -> Result<bool, LifecycleError> {
        let running = self.running.get(&id).map(|r| r.clone());
        let Some(running) = running.filter(|r| r.seed.owner == *owner) else {
            return Ok(self.get(owner, id).await?.is_some());
        };
        if running.seed.is_expired(self.clock.now()) {
            return Ok(false);
        }
        let update = TaskUpdate::finish(id, TaskOutcome::Cancelled, self.clock.now());
        if self.transition(&running, update).await? {
            running.cancel.cancel();
            self.running.remove(&id);
        }
        Ok(true)
    }

    /// Delivers the client's answers to what a running task asked, by key;
    /// keys not pending are ignored. Returns whether the task exists for
    /// `owner`.
    pub async fn answer(
        &self,
        owner: &TaskOwner,
        id: TaskId,
        responses: Map<String, Value>,
    ) -> StoreResult<bool> {
        let running = self.running.get(&id).map(|r| r.clone());
        let Some(running) = running.filter(|r| r.seed.owner == *owner) else {
            return Ok(self.get(owner, id).await?.is_some());
        };
        let mut inputs = running.inputs.lock().unwrap_or_else(|e| e.into_inner());
        for (key, response) in responses {
            if let Some((_, reply)) = inputs.pending.remove(&key) {
                let _ = reply.send(response);
            }
        }
        Ok(true)
    }

    /// A stored task, whoever owns it, unless it expired: for operators.
    pub async fn stored(&self, id: TaskId) -> StoreResult<Option<TaskRecord>> {
        let now = self.clock.now();
        Ok(self
            .store
            .get_task(id)
            .await?
            .filter(|r| !r.is_expired(now)))
    }

    /// A page of stored tasks, for operators.
    pub async fn list(&self, query: &TaskQuery) -> StoreResult<TaskPage> {
        self.store.list_tasks(query).await
    }

    /// Deletes expired tasks and stops the work of those still running.
    async fn prune(&self) -> StoreResult<u64> {
        let now = self.clock.now();
        let mut total = 0;
        loop {
            let pruned = self.store.prune_tasks(now, PRUNE_BATCH).await?;
            for p in &pruned {
                self.count(Some(p.status), None);
                if let Some((_, running)) = self.running.remove(&p.task_id) {
                    running.cancel.cancel();
                }
            }
            total += pruned.len() as u64;
            if pruned.len() < PRUNE_BATCH as usize {
                return Ok(total);
            }
        }
    }
}

impl TaskHandle {
    /// The task as created.
    pub fn record(&self) -> &TaskRecord {
        &self.running.seed
    }

    /// Asks the client something (an elicitation, a sampling request: the
    /// JSON-RPC request's `method` and `params`) and waits for its answer:
    /// the task is `input_required`, the request listed under a key of its
    /// own, until the client answers it with `tasks/update`.
    pub async fn ask(&self, request: Value) -> Result<Value, TaskEnded> {
        let (tx, answer) = oneshot::channel();
        {
            let mut inputs = self
                .running
                .inputs
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            inputs.next_key += 1;
            let key = format!("input-{}", inputs.next_key);
            inputs.pending.insert(key, (request, tx));
        }
        let tasks = &self.tasks;
        let id = self.running.seed.task_id;
        let waiting = TaskUpdate::waiting(id, true, tasks.clock.now());
        tasks
            .transition(&self.running, waiting)
            .await
            .map_err(|_| TaskEnded)?;
        let answer = tokio::select! {
            answer = answer => answer.map_err(|_| TaskEnded)?,
            _ = self.running.cancel.cancelled() => return Err(TaskEnded),
        };
        if !self.running.waiting() {
            let working = TaskUpdate::waiting(id, false, tasks.clock.now());
            tasks
                .transition(&self.running, working)
                .await
                .map_err(|_| TaskEnded)?;
        }
        Ok(answer)
    }
}

/// Applies queued creations and status changes, one transaction per
/// round; nothing is acknowledged before it is committed.
async fn run_writer(
    store: Arc<dyn TaskStore>,
    mut rx: mpsc::Receiver<TaskWrite>,
    stop: CancellationToken,
) {
    let mut buf = Vec::with_capacity(GROUP_MAX);
    loop {
        let closing = tokio::select! {
            biased;
            n = rx.recv_many(&mut buf, GROUP_MAX) => n == 0,
            _ = stop.cancelled() => true,
        };
        if closing {
            while let Ok(op) = rx.try_recv() {
                buf.push(op);
            }
        }
        let (mut inserts, mut insert_acks) = (Vec::new(), Vec::new());
        let (mut updates, mut update_acks) = (Vec::new(), Vec::new());
        for op in buf.drain(..) {
            match op {
                TaskWrite::Insert(record, ack) => {
                    inserts.push(*record);
                    insert_acks.push(ack);
                }
                TaskWrite::Update(update, ack) => {
                    updates.push(update);
                    update_acks.push(ack);
                }
            }
        }
        // One commit for both kinds: a commit costs more than the rows it
        // carries. No update in the round is of a task created in it: work
        // starts only once its task's creation is acknowledged.
        if !inserts.is_empty() || !updates.is_empty() {
            match store.write_tasks(&inserts, &updates).await {
                Ok(applied) => {
                    for ack in insert_acks {
                        let _ = ack.send(Ok(()));
                    }
                    for (ack, applied) in update_acks.into_iter().zip(applied) {
                        let _ = ack.send(Ok(applied));
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        created = inserts.len(),
                        updated = updates.len(),
                        "storing tasks failed"
                    );
                    for ack in insert_acks {
                        let _ = ack.send(Err(e.clone()));
                    }
                    for ack in update_acks {
                        let _ = ack.send(Err(e.clone()));
                    }
                }
            }
        }
        if closing {
            return;
        }
    }
}

/// Deletes expired tasks every `prune_interval`.
async fn run_pruner(tasks: Arc<Tasks>, stop: CancellationToken) {
    let mut every = tokio::time::interval(tasks.config.prune_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.cancelled() => return,
        }
        match tasks.prune().await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "deleted expired tasks"),
            Err(e) => tracing::warn!(error = %e, "deleting expired tasks failed"),
        }
    }
}
