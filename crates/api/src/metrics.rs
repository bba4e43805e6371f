//! Prometheus metrics at `/metrics`, through the `metrics` facade and its
//! Prometheus exporter.
//!
//! Owns the process-wide recorder (installed once, on first use) and the
//! scrape handler, which refreshes the gauges read from the session manager
//! (sessions by status, request-log queue depth) before rendering. Counters
//! and histograms are recorded where things happen: sessions created and
//! ended (by reason), reconnects (by outcome) and store errors in the
//! lifecycle, request durations (by method, tool, status and protocol
//! generation) in the MCP transport. The gateway's per-upstream series are
//! read from its reports at scrape time, labelled `upstream`.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use sessiongate_core::task::TaskStatus;
use sessiongate_core::upstream::{UpstreamReport, UpstreamStatus};

use crate::ApiState;

/// Request-duration buckets, in seconds: sub-millisecond tool calls up to
/// minutes-long ones.
const DURATION_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed on first call. If another
/// recorder was installed first (an embedding program's), metrics recorded
/// through it are not ours to render and `/metrics` shows only the gauges.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(DURATION_BUCKETS)
            .expect("the bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows its own only");
        }
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!("sessiongate_sessions", "Sessions in the store, by status");
    describe_gauge!(
        "sessiongate_tasks",
        "Tasks (tasks extension) in the store, by status"
    );
    describe_gauge!(
        "sessiongate_tasks_active",
        "Tasks not yet finished: working or waiting for input"
    );
    describe_counter!(
        "sessiongate_sessions_created_total",
        "Sessions created by initialize"
    );
    describe_counter!(
        "sessiongate_sessions_ended_total",
        "Sessions ended, by reason"
    );
    describe_counter!(
        "sessiongate_reconnects_total",
        "Reconnect attempts, by outcome (success, refused, rate_limited, error)"
    );
    describe_histogram!(
        "sessiongate_request_duration_seconds",
        Unit::Seconds,
        "MCP requests served, by method, tool, status and protocol generation"
    );
    describe_gauge!(
        "sessiongate_request_log_queue_depth",
        "Request-log rows waiting to be written"
    );
    describe_histogram!(
        "sessiongate_request_log_flush_seconds",
        Unit::Seconds,
        "Time to write one batch of request-log rows"
    );
    describe_gauge!(
        "sessiongate_websocket_subscribers",
        "Open live event streams (/api/mcp/ws/sessions)"
    );
    describe_counter!(
        "sessiongate_websocket_lagged_total",
        "Times a live event stream fell behind and was sent a fresh snapshot"
    );
    describe_counter!(
        "sessiongate_store_errors_total",
        "Failed calls to the session store, by operation"
    );
    describe_gauge!(
        "sessiongate_store_up",
        "1 while the session store's last write and read succeeded, else 0"
    );
    describe_counter!(
        "sessiongate_requests_refused_total",
        "Requests refused with 503 before doing anything, by reason"
    );
    describe_counter!(
        "sessiongate_request_log_rows_lost_total",
        "Request-log rows given up at shutdown because the store stayed unavailable"
    );
    describe_counter!(
        "sessiongate_client_evictions_total",
        "Stateless client identities forgotten at the cap, by table (identities, clients)"
    );
    describe_counter!(
        "sessiongate_limit_refusals_total",
        "Requests refused by a limit (client_metadata, initialize_rate, body_size, \
         body_read_timeout, mcp_connections)"
    );
    describe_gauge!("sessiongate_connections_open", "Open client connections");
    describe_gauge!(
        "sessiongate_upstream_up",
        "Each upstream MCP server: 1 up, 0.5 degraded (failed or restarted recently), 0 down"
    );
    describe_gauge!(
        "sessiongate_upstream_processes",
        "Children running (stdio upstreams) or upstream sessions held (HTTP upstreams)"
    );
    describe_counter!(
        "sessiongate_upstream_restarts_total",
        "Upstream sessions started again after one was lost, by upstream"
    );
    describe_gauge!(
        "sessiongate_upstream_sessions_mapped",
        "Client sessions and stateless clients holding a session at each upstream"
    );
    describe_counter!(
        "sessiongate_upstream_requests_total",
        "Requests relayed to each upstream"
    );
    describe_counter!(
        "sessiongate_upstream_errors_total",
        "Relayed requests that failed, by upstream"
    );
    describe_gauge!(
        "sessiongate_upstream_latency_ms",
        "Latency of requests relayed to each upstream, in milliseconds, by quantile (0.5, 0.99)"
    );
    describe_counter!(
        "sessiongate_connections_closed_total",
        "Connections closed by the server, by reason (header_timeout, idle, evicted)"
    );
    describe_counter!(
        "sessiongate_connections_refused_total",
        "Connections closed on accept: at max_connections with none idle to evict"
    );
}

/// `GET /metrics`: the Prometheus text exposition format.
pub async fn render(State(state): State<ApiState>) -> Response {
    let handle = handle();
    let manager = &state.manager;
    metrics::gauge!("sessiongate_sessions", "status" => "active")
        .set(manager.active_count() as f64);
    metrics::gauge!("sessiongate_sessions", "status" => "disconnected")
        .set(manager.disconnected_count() as f64);
    metrics::gauge!("sessiongate_request_log_queue_depth")
        .set(state.request_log.queue_depth() as f64);
    let tasks = state.tasks.counts();
    for status in TaskStatus::ALL {
        metrics::gauge!("sessiongate_tasks", "status" => status.as_str())
            .set(tasks.get(status) as f64);
    }
    metrics::gauge!("sessiongate_tasks_active").set((tasks.working + tasks.input_required) as f64);
    if let Some(monitor) = &state.upstreams {
        monitor.reports().iter().for_each(record_upstream);
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
        .into_response()
}

/// One upstream's series, from its report. The counters are the gateway's
/// own running totals, so they are set, not added to.
fn record_upstream(report: &UpstreamReport) {
    let name = report.name.to_string();
    let up = match report.status {
        UpstreamStatus::Up => 1.0,
        UpstreamStatus::Degraded => 0.5,
        UpstreamStatus::Down => 0.0,
    };
    metrics::gauge!("sessiongate_upstream_up", "upstream" => name.clone()).set(up);
    metrics::gauge!("sessiongate_upstream_processes", "upstream" => name.clone())
        .set(report.processes as f64);
    metrics::gauge!("sessiongate_upstream_sessions_mapped", "upstream" => name.clone())
        .set(report.sessions_mapped as f64);
    metrics::counter!("sessiongate_upstream_restarts_total", "upstream" => name.clone())
        .absolute(report.restarts);
    metrics::counter!("sessiongate_upstream_requests_total", "upstream" => name.clone())
        .absolute(report.requests);
    metrics::counter!("sessiongate_upstream_errors_total", "upstream" => name.clone())
        .absolute(report.errors);
    for (quantile, value) in [("0.5", report.p50_ms), ("0.99", report.p99_ms)] {
        if let Some(ms) = value {
            metrics::gauge!(
                "sessiongate_upstream_latency_ms",
                "upstream" => name.clone(),
                "quantile" => quantile
            )
            .set(ms);
        }
    }
}
