//! Row <-> record mapping shared by both backends: the column lists, the
//! plain row structs `sqlx` decodes into, their checked conversion to domain
//! records (bad stored data becomes [`StoreError::Corrupt`], never a panic),
//! the flattening of records into bindable values (NUL characters replaced,
//! see [`scrub`]), the one dynamic filter clause, and error mapping.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;
use sqlx::types::Json;

use sessiongate_core::clock::Timestamp;
use sessiongate_core::ids::SessionId;
use sessiongate_core::request_log::{RequestLogEntry, RequestStatus};
use sessiongate_core::session::{
    ActivityUpdate, ClientIdentity, DisconnectReason, SessionEnd, SessionRecord, SessionStatus,
};
use sessiongate_core::store::{
    ConnectionBucket, DisconnectStats, PrunedTask, SessionQuery, StoreError, StoreResult,
    TaskCounts,
};
use sessiongate_core::stream::{EventPage, PageId};
use sessiongate_core::task::{TaskError, TaskOwner, TaskRecord, TaskStatus, TaskUpdate};
use sessiongate_core::token::{ReconnectState, TokenGrant, TokenHash};
use sessiongate_core::upstream::{UpstreamMapping, UpstreamName};

/// The columns of a [`SessionRow`], in the order every session query selects
/// and every insert writes them.
pub(crate) const SESSION_COLUMNS: &str = "session_id, client_type, client_name, client_version, \
     client_capabilities, protocol_version, principal, remote_addr, user_agent, connected_at, \
     last_activity, status, disconnected_at, disconnect_reason, total_duration_ms, \
     request_count, metadata, reconnect_count, reconnect_token_hash, reconnect_expires_at";

/// How many columns [`SESSION_COLUMNS`] has: bind parameters per inserted row.
pub(crate) const SESSION_COLUMN_COUNT: usize = 20;

/// The columns of a [`RequestRow`], in select and insert order.
pub(crate) const REQUEST_COLUMNS: &str = "session_id, client_key, method, tool_name, started_at, \
     duration_us, status, error_code, error_message, bytes_in, bytes_out, upstream";

/// The columns of a [`ReconnectRow`].
pub(crate) const RECONNECT_COLUMNS: &str =
    "reconnect_token_hash, reconnect_expires_at, reconnect_used_hash, reconnect_count";

/// The columns of an [`EventPageRow`], in select and insert order.
pub(crate) const EVENT_PAGE_COLUMNS: &str = "session_id, page_id, created_at, events";

/// How many columns [`REQUEST_COLUMNS`] has.
pub(crate) const REQUEST_COLUMN_COUNT: usize = 12;

/// Maps a driver error. A value that cannot be decoded is corrupt data; the
/// rest are database failures.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        e => StoreError::Database(e.to_string()),
    }
}

pub(crate) fn migrate_err(e: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Migration(e.to_string())
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

/// A `u64` count as stored; counts beyond `i64::MAX` saturate.
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

pub(crate) fn unsigned(what: &str, n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| corrupt(what, format_args!("negative value {n}")))
}

fn upstream_name(s: String) -> StoreResult<UpstreamName> {
    UpstreamName::new(s).map_err(|e| corrupt("upstream", e))
}

fn session_id(s: &str) -> StoreResult<SessionId> {
    s.parse()
        .map_err(|e| corrupt("session_id", format_args!("{s:?}: {e}")))
}

/// Text as stored: NUL characters become U+FFFD. PostgreSQL cannot store NUL
/// in TEXT nor `\u0000` in JSONB, and a client-supplied name must not fail
/// the group commit it shares with other sessions; both backends store the
/// same text so they behave alike.
pub(crate) fn scrub(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn scrub_opt(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(scrub)
}

/// A JSON value as stored, with NUL characters in its strings and keys
/// replaced as by [`scrub`].
pub(crate) fn scrub_json(v: &Value) -> Cow<'_, Value> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(has_nul),
            Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn scrubbed(v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(scrub(s).into_owned()),
            Value::Array(a) => Value::Array(a.iter().map(scrubbed).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (scrub(k).into_owned(), scrubbed(v)))
                    .collect(),
            ),
            v => v.clone(),
        }
    }
    if has_nul(v) {
        Cow::Owned(scrubbed(v))
    } else {
        Cow::Borrowed(v)
    }
}

/// A JSON value as stored text (see [`scrub_json`]).
fn json_text(v: &Value) -> String {
    // Serialising a `Value` cannot fail: its map keys are strings.
    scrub_json(v).to_string()
}

/// A `sessions` row as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow {
    session_id: String,
    client_type: String,
    client_name: Option<String>,
    client_version: Option<String>,
    client_capabilities: Json<Value>,
    protocol_version: String,
    principal: Option<String>,
    remote_addr: Option<String>,
    user_agent: Option<String>,
    connected_at: i64,
    last_activity: i64,
    status: String,
    disconnected_at: Option<i64>,
    disconnect_reason: Option<String>,
    total_duration_ms: Option<i64>,
    request_count: i64,
    metadata: Json<Value>,
    reconnect_count: i64,
    reconnect_token_hash: Option<String>,
    reconnect_expires_at: Option<i64>,
}

impl SessionRow {
    pub(crate) fn into_record(self) -> StoreResult<SessionRecord> {
        let session_id = session_id(&self.session_id)?;
        let in_session = |e: StoreError| match e {
            StoreError::Corrupt(m) => StoreError::Corrupt(format!("session {session_id}: {m}")),
            e => e,
        };
        let status = self
            .status
            .parse::<SessionStatus>()
            .map_err(|e| corrupt("status", e))
            .map_err(in_session)?;
        let disconnect_reason = self
            .disconnect_reason
            .map(|r| r.parse::<DisconnectReason>())
            .transpose()
            .map_err(|e| corrupt("disconnect_reason", e))
            .map_err(in_session)?;
        let total_duration = self
            .total_duration_ms
            .map(|ms| unsigned("total_duration_ms", ms).map(Duration::from_millis))
            .transpose()
            .map_err(in_session)?;
        let request_count = unsigned("request_count", self.request_count).map_err(in_session)?;
        let reconnect_count =
            unsigned("reconnect_count", self.reconnect_count).map_err(in_session)?;
        let reconnect_token = match (self.reconnect_token_hash, self.reconnect_expires_at) {
            (Some(hash), Some(at)) => Some(TokenGrant {
                hash: token_hash("reconnect_token_hash", &hash).map_err(in_session)?,
                expires_at: Timestamp::from_millis(at),
            }),
            _ => None,
        };
        Ok(SessionRecord {
            session_id,
            client: ClientIdentity {
                client_type: self.client_type,
                client_name: self.client_name,
                client_version: self.client_version,
                client_capabilities: self.client_capabilities.0,
                protocol_version: self.protocol_version,
                principal: self.principal,
                remote_addr: self.remote_addr,
                user_agent: self.user_agent,
            },
            connected_at: Timestamp::from_millis(self.connected_at),
            last_activity: Timestamp::from_millis(self.last_activity),
            status,
            disconnected_at: self.disconnected_at.map(Timestamp::from_millis),
            disconnect_reason,
            total_duration,
            request_count,
            metadata: self.metadata.0,
            reconnect_count,
            reconnect_token,
        })
    }
}

pub(crate) fn token_hash(what: &str, hex: &str) -> StoreResult<TokenHash> {
    TokenHash::from_hex(hex)
        .ok_or_else(|| corrupt(what, format_args!("{hex:?} is not a SHA-256 hex digest")))
}

/// The reconnect columns of one session.
#[derive(Debug, sqlx::FromRow)]
pub struct ReconnectRow {
    reconnect_token_hash: Option<String>,
    reconnect_expires_at: Option<i64>,
    reconnect_used_hash: Option<String>,
    reconnect_count: i64,
}

impl ReconnectRow {
    pub(crate) fn into_state(self) -> StoreResult<ReconnectState> {
        let current = match (self.reconnect_token_hash, self.reconnect_expires_at) {
            (Some(hash), Some(at)) => Some(TokenGrant {
                hash: token_hash("reconnect_token_hash", &hash)?,
                expires_at: Timestamp::from_millis(at),
            }),
            _ => None,
        };
        Ok(ReconnectState {
            current,
            used: self
                .reconnect_used_hash
                .map(|h| token_hash("reconnect_used_hash", &h))
                .transpose()?,
            count: unsigned("reconnect_count", self.reconnect_count)?,
        })
    }
}

/// A `session_event_pages` row as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct EventPageRow {
    session_id: String,
    page_id: i64,
    created_at: i64,
    events: Vec<u8>,
}

impl EventPageRow {
    pub(crate) fn into_page(self) -> StoreResult<EventPage> {
        Ok(EventPage {
            session_id: session_id(&self.session_id)?,
            id: PageId(unsigned("event page_id", self.page_id)?),
            at: Timestamp::from_millis(self.created_at),
            body: self.events,
        })
    }
}

pub(crate) fn into_pages(rows: Vec<EventPageRow>) -> StoreResult<Vec<EventPage>> {
    rows.into_iter().map(EventPageRow::into_page).collect()
}

pub(crate) fn into_records(rows: Vec<SessionRow>) -> StoreResult<Vec<SessionRecord>> {
    rows.into_iter().map(SessionRow::into_record).collect()
}

/// A session record flattened into the values of [`SESSION_COLUMNS`], with
/// NUL characters replaced (see [`scrub`]).
pub struct SessionValues<'a> {
    pub session_id: String,
    pub client_type: Cow<'a, str>,
    pub client_name: Option<Cow<'a, str>>,
    pub client_version: Option<Cow<'a, str>>,
    /// JSON text.
    pub client_capabilities: String,
    pub protocol_version: Cow<'a, str>,
    pub principal: Option<Cow<'a, str>>,
    pub remote_addr: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub connected_at: i64,
    pub last_activity: i64,
    pub status: &'static str,
    pub disconnected_at: Option<i64>,
    pub disconnect_reason: Option<&'static str>,
    pub total_duration_ms: Option<i64>,
    pub request_count: i64,
    /// JSON text.
    pub metadata: String,
    pub reconnect_count: i64,
    pub reconnect_token_hash: Option<String>,
    pub reconnect_expires_at: Option<i64>,
}

impl<'a> SessionValues<'a> {
    pub(crate) fn new(r: &'a SessionRecord) -> Self {
        let c = &r.client;
        SessionValues {
            session_id: r.session_id.to_string(),
            client_type: scrub(&c.client_type),
            client_name: scrub_opt(&c.client_name),
            client_version: scrub_opt(&c.client_version),
            client_capabilities: json_text(&c.client_capabilities),
            protocol_version: scrub(&c.protocol_version),
            principal: scrub_opt(&c.principal),
            remote_addr: scrub_opt(&c.remote_addr),
            user_agent: scrub_opt(&c.user_agent),
            connected_at: r.connected_at.as_millis(),
            last_activity: r.last_activity.as_millis(),
            status: r.status.as_str(),
            disconnected_at: r.disconnected_at.map(Timestamp::as_millis),
            disconnect_reason: r.disconnect_reason.map(DisconnectReason::as_str),
            total_duration_ms: r.total_duration.map(millis),
            request_count: to_i64(r.request_count),
            metadata: json_text(&r.metadata),
            reconnect_count: to_i64(r.reconnect_count),
            reconnect_token_hash: r.reconnect_token.map(|g| g.hash.to_hex()),
            reconnect_expires_at: r.reconnect_token.map(|g| g.expires_at.as_millis()),
        }
    }
}

/// A `requests` row as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct RequestRow {
    session_id: Option<String>,
    client_key: Option<String>,
    method: String,
    tool_name: Option<String>,
    started_at: i64,
    duration_us: i64,
    status: String,
    error_code: Option<i64>,
    error_message: Option<String>,
    bytes_in: i64,
    bytes_out: i64,
    upstream: Option<String>,
}

impl RequestRow {
    pub(crate) fn into_entry(self) -> StoreResult<RequestLogEntry> {
        Ok(RequestLogEntry {
            session_id: self.session_id.as_deref().map(session_id).transpose()?,
            client_key: self.client_key,
            method: self.method,
            tool_name: self.tool_name,
            started_at: Timestamp::from_millis(self.started_at),
            duration: Duration::from_micros(unsigned("request duration_us", self.duration_us)?),
            status: self
                .status
                .parse::<RequestStatus>()
                .map_err(|e| corrupt("request status", e))?,
            error_code: self.error_code,
            error_message: self.error_message,
            bytes_in: unsigned("request bytes_in", self.bytes_in)?,
            bytes_out: unsigned("request bytes_out", self.bytes_out)?,
            upstream: self.upstream.map(upstream_name).transpose()?,
        })
    }
}

pub(crate) fn into_entries(rows: Vec<RequestRow>) -> StoreResult<Vec<RequestLogEntry>> {
    rows.into_iter().map(RequestRow::into_entry).collect()
}

/// A request-log entry flattened into the values of [`REQUEST_COLUMNS`], with
/// NUL characters replaced (see [`scrub`]).
pub struct RequestValues<'a> {
    pub session_id: Option<String>,
    pub client_key: Option<Cow<'a, str>>,
    pub method: Cow<'a, str>,
    pub tool_name: Option<Cow<'a, str>>,
    pub started_at: i64,
    pub duration_us: i64,
    pub status: &'static str,
    pub error_code: Option<i64>,
    pub error_message: Option<Cow<'a, str>>,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub upstream: Option<&'a str>,
}

impl<'a> RequestValues<'a> {
    pub(crate) fn new(e: &'a RequestLogEntry) -> Self {
        RequestValues {
            session_id: e.session_id.map(|id| id.to_string()),
            client_key: scrub_opt(&e.client_key),
            method: scrub(&e.method),
            tool_name: scrub_opt(&e.tool_name),
            started_at: e.started_at.as_millis(),
            duration_us: micros(e.duration),
            status: e.status.as_str(),
            error_code: e.error_code,
            error_message: scrub_opt(&e.error_message),
            bytes_in: to_i64(e.bytes_in),
            bytes_out: to_i64(e.bytes_out),
            upstream: e.upstream.as_ref().map(UpstreamName::as_str),
        }
    }
}

/// Activity updates with one entry per session, keeping the latest figures,
/// sorted by id so concurrent writers lock rows in the same order.
pub(crate) fn merge_activity(updates: &[ActivityUpdate]) -> Vec<ActivityValues> {
    let mut by_id: HashMap<SessionId, ActivityValues> = HashMap::with_capacity(updates.len());
    for u in updates {
        let v = by_id.entry(u.session_id).or_insert(ActivityValues {
            session_id: u.session_id,
            last_activity: i64::MIN,
            request_count: 0,
        });
        v.last_activity = v.last_activity.max(u.last_activity.as_millis());
        v.request_count = v.request_count.max(to_i64(u.request_count));
    }
    let mut merged: Vec<ActivityValues> = by_id.into_values().collect();
    merged.sort_unstable_by_key(|v| v.session_id);
    merged
}

pub struct ActivityValues {
    pub session_id: SessionId,
    pub last_activity: i64,
    pub request_count: i64,
}

/// Session ends with one entry per session, the first one winning (a later
/// end of the same session would find it no longer active), sorted by id so
/// concurrent writers lock rows in the same order.
pub(crate) fn merge_ends(ends: &[SessionEnd]) -> Vec<EndValues> {
    let mut seen = std::collections::HashSet::with_capacity(ends.len());
    let mut merged: Vec<EndValues> = ends
        .iter()
        .filter(|e| seen.insert(e.session_id))
        .map(|e| EndValues {
            session_id: e.session_id,
            at: e.at.as_millis(),
            reason: e.reason.as_str(),
            total_duration_ms: millis(e.total_duration),
            last_activity: e.last_activity.as_millis(),
            request_count: to_i64(e.request_count),
        })
        .collect();
    merged.sort_unstable_by_key(|v| v.session_id);
    merged
}

pub struct EndValues {
    pub session_id: SessionId,
    pub at: i64,
    pub reason: &'static str,
    pub total_duration_ms: i64,
    pub last_activity: i64,
    pub request_count: i64,
}

/// One per-second group of [`connection_buckets`](sessiongate_core::store::SessionStore::connection_buckets).
#[derive(Debug, sqlx::FromRow)]
pub struct BucketRow {
    second: i64,
    connected: i64,
    ended: i64,
    ended_duration_ms: i64,
    active_connected_at_ms: i64,
}

impl BucketRow {
    pub(crate) fn into_bucket(self) -> StoreResult<ConnectionBucket> {
        Ok(ConnectionBucket {
            second: self.second,
            connected: unsigned("bucket count", self.connected)?,
            ended: unsigned("bucket ended count", self.ended)?,
            ended_duration_ms: self.ended_duration_ms,
            active_connected_at_ms: self.active_connected_at_ms,
        })
    }
}

pub(crate) fn into_buckets(rows: Vec<BucketRow>) -> StoreResult<Vec<ConnectionBucket>> {
    rows.into_iter().map(BucketRow::into_bucket).collect()
}

/// Aggregates over the ended sessions of one disconnect reason.
#[derive(Debug, sqlx::FromRow)]
pub struct ReasonRow {
    reason: Option<String>,
    /// Sessions with this reason.
    sessions: i64,
    /// Of those, the ones with a recorded duration.
    timed: i64,
    sum_ms: Option<i64>,
    max_ms: Option<i64>,
    min_ms: Option<i64>,
}

/// Combines per-reason aggregates into [`DisconnectStats`]. Reasons written by
/// the reference system (`error: <kind>`) count as their known reason;
/// unknown ones are reported as stored, and a missing one as `unknown`.
pub(crate) fn disconnect_stats(rows: Vec<ReasonRow>) -> StoreResult<DisconnectStats> {
    let mut stats = DisconnectStats::default();
    let (mut timed, mut sum_ms) = (0u64, 0i128);
    let (mut max_ms, mut min_ms): (Option<i64>, Option<i64>) = (None, None);
    let mut reasons = BTreeMap::new();
    for row in rows {
        let sessions = unsigned("disconnect count", row.sessions)?;
        let key = match row.reason {
            None => "unknown".to_string(),
            Some(r) => match r.parse::<DisconnectReason>() {
                Ok(known) => known.as_str().to_string(),
                Err(_) => r,
            },
        };
        *reasons.entry(key).or_insert(0) += sessions;
        stats.total_disconnected += sessions;
        timed += unsigned("disconnect timed count", row.timed)?;
        sum_ms += i128::from(row.sum_ms.unwrap_or(0));
        max_ms = max_ms.max(row.max_ms);
        min_ms = match (min_ms, row.min_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    stats.disconnect_reasons = reasons;
    if timed > 0 {
        stats.avg_duration_seconds = sum_ms as f64 / timed as f64 / 1000.0;
    }
    stats.max_duration_seconds = max_ms.unwrap_or(0) as f64 / 1000.0;
    stats.min_duration_seconds = min_ms.unwrap_or(0) as f64 / 1000.0;
    Ok(stats)
}

/// A `(status, count)` group of `status_counts`.
#[derive(Debug, sqlx::FromRow)]
pub struct StatusCountRow {
    status: String,
    sessions: i64,
}

pub(crate) fn status_counts(
    rows: Vec<StatusCountRow>,
) -> StoreResult<sessiongate_core::store::StatusCounts> {
    let mut counts = sessiongate_core::store::StatusCounts::default();
    for row in rows {
        let n = unsigned("status count", row.sessions)?;
        match row
            .status
            .parse::<SessionStatus>()
            .map_err(|e| corrupt("status", e))?
        {
            SessionStatus::Active => counts.active += n,
            SessionStatus::Disconnected => counts.disconnected += n,
        }
    }
    Ok(counts)
}

/// The `WHERE` clause of a [`SessionQuery`]'s filters, with placeholders
/// from `$1` on, and the values to bind to them in order.
pub(crate) fn session_filters(q: &SessionQuery) -> (String, Vec<&str>) {
    let mut values = Vec::new();
    let mut clause = String::new();
    for (column, value) in [
        ("status", q.status.map(SessionStatus::as_str)),
        ("client_type", q.client_type.as_deref()),
    ] {
        if let Some(value) = value {
            values.push(value);
            let sep = if clause.is_empty() {
                " WHERE "
            } else {
                " AND "
            };
            clause.push_str(&format!("{sep}{column} = ${}", values.len()));
        }
    }
    (clause, values)
}

/// The columns of a [`TaskRow`], in select and insert order.
pub(crate) const TASK_COLUMNS: &str = "task_id, owner_kind, owner, tool, status, status_message, \
     created_at, updated_at, ttl_ms, expires_at, result, error_code, error_message";

/// How many columns [`TASK_COLUMNS`] has.
pub(crate) const TASK_COLUMN_COUNT: usize = 13;

/// A `tasks` row as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct TaskRow {
    task_id: String,
    owner_kind: String,
    owner: String,
    tool: String,
    status: String,
    status_message: Option<String>,
    created_at: i64,
    updated_at: i64,
    ttl_ms: i64,
    result: Option<String>,
    error_code: Option<i64>,
    error_message: Option<String>,
}

impl TaskRow {
    pub(crate) fn into_record(self) -> StoreResult<TaskRecord> {
        let result = self
            .result
            .map(|r| serde_json::from_str(&r).map_err(|e| corrupt("result", e)))
            .transpose()?;
        let error = match (self.error_code, self.error_message) {
            (Some(code), message) => Some(TaskError {
                code,
                message: message.unwrap_or_default(),
            }),
            (None, _) => None,
        };
        Ok(TaskRecord {
            task_id: self
                .task_id
                .parse()
                .map_err(|e| corrupt("task_id", format_args!("{:?}: {e}", self.task_id)))?,
            owner: TaskOwner::from_parts(&self.owner_kind, self.owner)
                .map_err(|e| corrupt("owner_kind", e))?,
            tool: self.tool,
            status: self.status.parse().map_err(|e| corrupt("status", e))?,
            status_message: self.status_message,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
            ttl: Duration::from_millis(unsigned("ttl_ms", self.ttl_ms)?),
            result,
            error,
        })
    }
}

pub(crate) fn into_tasks(rows: Vec<TaskRow>) -> StoreResult<Vec<TaskRecord>> {
    rows.into_iter().map(TaskRow::into_record).collect()
}

/// A task record flattened into bindable values.
pub struct TaskValues<'a> {
    pub task_id: String,
    pub owner_kind: &'static str,
    pub owner: Cow<'a, str>,
    pub tool: Cow<'a, str>,
    pub status: &'static str,
    pub status_message: Option<Cow<'a, str>>,
    pub created_at: i64,
    pub updated_at: i64,
    pub ttl_ms: i64,
    pub expires_at: i64,
    pub result: Option<String>,
    pub error_code: Option<i64>,
    pub error_message: Option<Cow<'a, str>>,
}

impl<'a> TaskValues<'a> {
    pub(crate) fn new(r: &'a TaskRecord) -> Self {
        TaskValues {
            task_id: r.task_id.to_string(),
            owner_kind: r.owner.kind(),
            owner: scrub(r.owner.id()),
            tool: scrub(&r.tool),
            status: r.status.as_str(),
            status_message: scrub_opt(&r.status_message),
            created_at: r.created_at.as_millis(),
            updated_at: r.updated_at.as_millis(),
            ttl_ms: millis(r.ttl),
            expires_at: r.expires_at().as_millis(),
            result: r.result.as_ref().map(json_text),
            error_code: r.error.as_ref().map(|e| e.code),
            error_message: r.error.as_ref().map(|e| scrub(&e.message)),
        }
    }
}

/// How many values a [`TaskUpdateValues`] binds.
pub(crate) const TASK_UPDATE_COLUMN_COUNT: usize = 7;

/// A task update flattened into bindable values.
pub struct TaskUpdateValues<'a> {
    pub task_id: String,
    pub status: &'static str,
    pub status_message: Option<Cow<'a, str>>,
    pub at: i64,
    pub result: Option<String>,
    pub error_code: Option<i64>,
    pub error_message: Option<Cow<'a, str>>,
}

impl<'a> TaskUpdateValues<'a> {
    pub(crate) fn new(u: &'a TaskUpdate) -> Self {
        TaskUpdateValues {
            task_id: u.task_id.to_string(),
            status: u.status.as_str(),
            status_message: scrub_opt(&u.status_message),
            at: u.at.as_millis(),
            result: u.result.as_ref().map(json_text),
            error_code: u.error.as_ref().map(|e| e.code),
            error_message: u.error.as_ref().map(|e| scrub(&e.message)),
        }
    }
}

/// Tasks by status, as counted by the store.
#[derive(Debug, sqlx::FromRow)]
pub struct TaskCountRow {
    status: String,
    n: i64,
}

pub(crate) fn task_counts(rows: Vec<TaskCountRow>) -> StoreResult<TaskCounts> {
    let mut counts = TaskCounts::default();
    for row in rows {
        let status: TaskStatus = row.status.parse().map_err(|e| corrupt("status", e))?;
        *counts.slot(status) = unsigned("count", row.n)?;
    }
    Ok(counts)
}

/// A deleted task's id and status.
#[derive(Debug, sqlx::FromRow)]
pub struct PrunedTaskRow {
    task_id: String,
    status: String,
}

pub(crate) fn pruned_tasks(rows: Vec<PrunedTaskRow>) -> StoreResult<Vec<PrunedTask>> {
    rows.into_iter()
        .map(|r| {
            Ok(PrunedTask {
                task_id: r
                    .task_id
                    .parse()
                    .map_err(|e| corrupt("task_id", format_args!("{:?}: {e}", r.task_id)))?,
                status: r.status.parse().map_err(|e| corrupt("status", e))?,
            })
        })
        .collect()
}

/// The columns of an [`UpstreamMappingRow`], in select and insert order.
pub(crate) const UPSTREAM_MAPPING_COLUMNS: &str = "session_id, upstream, upstream_session_id, \
     protocol_version, initialize_params, log_level, subscriptions, updated_at";

/// An `upstream_mappings` row as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct UpstreamMappingRow {
    session_id: String,
    upstream: String,
    upstream_session_id: Option<String>,
    protocol_version: String,
    initialize_params: Json<Value>,
    log_level: Option<String>,
    subscriptions: Json<Value>,
    updated_at: i64,
}

impl UpstreamMappingRow {
    pub(crate) fn into_mapping(self) -> StoreResult<UpstreamMapping> {
        let subscriptions = serde_json::from_value(self.subscriptions.0)
            .map_err(|e| corrupt("upstream mapping subscriptions", e))?;
        Ok(UpstreamMapping {
            session_id: session_id(&self.session_id)?,
            upstream: upstream_name(self.upstream)?,
            upstream_session_id: self.upstream_session_id,
            protocol_version: self.protocol_version,
            initialize_params: self.initialize_params.0,
            log_level: self.log_level,
            subscriptions,
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

/// An upstream mapping flattened into the values of
/// [`UPSTREAM_MAPPING_COLUMNS`], with NUL characters replaced.
pub struct UpstreamMappingValues<'a> {
    pub session_id: String,
    pub upstream: &'a str,
    pub upstream_session_id: Option<Cow<'a, str>>,
    pub protocol_version: Cow<'a, str>,
    pub initialize_params: Json<Value>,
    pub log_level: Option<Cow<'a, str>>,
    pub subscriptions: Json<Vec<String>>,
    pub updated_at: i64,
}

impl<'a> UpstreamMappingValues<'a> {
    pub(crate) fn new(m: &'a UpstreamMapping) -> Self {
        UpstreamMappingValues {
            session_id: m.session_id.to_string(),
            upstream: m.upstream.as_str(),
            upstream_session_id: scrub_opt(&m.upstream_session_id),
            protocol_version: scrub(&m.protocol_version),
            initialize_params: Json(scrub_json(&m.initialize_params).into_owned()),
            log_level: scrub_opt(&m.log_level),
            subscriptions: Json(
                m.subscriptions
                    .iter()
                    .map(|s| scrub(s).into_owned())
                    .collect(),
            ),
            updated_at: m.updated_at.as_millis(),
        }
    }
}

/// Sessions mapped to an upstream, as counted by the store.
#[derive(Debug, sqlx::FromRow)]
pub struct UpstreamCountRow {
    upstream: String,
    n: i64,
}

pub(crate) fn upstream_counts(
    rows: Vec<UpstreamCountRow>,
) -> StoreResult<Vec<(UpstreamName, u64)>> {
    rows.into_iter()
        .map(|r| Ok((upstream_name(r.upstream)?, unsigned("count", r.n)?)))
        .collect()
}
