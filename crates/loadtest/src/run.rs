//! One load test from options to report: a preflight session that learns
//! the server (tools, session ids, reconnect tokens, health API), the client
//! tasks, the progress display, and the report.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::admin::AdminApi;
use crate::checks::Checks;
use crate::mcp_client::{Endpoint, Session};
use crate::options::{LoadtestArgs, Scenario};
use crate::progress::{Length, Progress};
use crate::report::{self, Expiry, Report};
use crate::scenario::{self, Ctx, Plan};
use crate::stats::{Op, Stats};
use crate::tools::ToolMix;
use crate::{os, Error};

const DEFAULT_DURATION: Duration = Duration::from_secs(10);
const DEFAULT_IDLE_TIME: Duration = Duration::from_secs(1);

/// What the preflight session learned.
struct Preflight {
    tools: Vec<Value>,
    session_ids: bool,
    reconnect_tokens: bool,
}

/// Opens one session the way client 0 will, lists every tool, and ends it.
/// Its requests are not part of the figures.
async fn preflight(endpoint: &Arc<Endpoint>, args: &LoadtestArgs) -> Result<Preflight, Error> {
    let (version, stateless) = args.protocol.for_client(0);
    let mut s = Session::new(
        endpoint.clone(),
        Arc::new(Stats::default()),
        version,
        stateless,
    );
    let unreachable = |what: &str, f: crate::mcp_client::Failure| {
        Error::Setup(format!("{what} at {} failed: {f}", args.url))
    };
    if !stateless {
        s.initialize()
            .await
            .map_err(|f| unreachable("initialize", f))?;
    }
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    // A bounded number of pages: enough for any real server.
    for _ in 0..20 {
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let reply = s
            .request(Op::ToolsList, "tools/list", params, Vec::new(), false)
            .await
            .map_err(|f| unreachable("tools/list", f))?;
        let result = reply.value();
        if let Some(page) = result["tools"].as_array() {
            tools.extend(page.iter().cloned());
        }
        cursor = result["nextCursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    let found = Preflight {
        tools,
        session_ids: s.id.is_some(),
        reconnect_tokens: s.token.is_some(),
    };
    let _ = s.delete().await;
    Ok(found)
}

/// The health API's base: `--api-url`, else the MCP URL's origin.
fn api_base(args: &LoadtestArgs, endpoint: &Endpoint) -> String {
    args.api_url.clone().unwrap_or_else(|| {
        let mut base = endpoint.url().clone();
        base.set_path("");
        base.set_query(None);
        base.to_string()
    })
}

/// Runs the load test `args` describe and returns its report. Ctrl-C ends
/// the run early; the report covers what ran.
pub async fn run(args: LoadtestArgs) -> Result<Report, Error> {
    args.validate()?;
    let open_files = os::raise_open_files();
    let endpoint = Arc::new(Endpoint::new(
        &args.url,
        args.request_timeout,
        args.clients + 8,
    )?);
    let pre = preflight(&endpoint, &args).await?;
    let tools = ToolMix::choose(&args.tools, &args.tool_args, &pre.tools)?;
    let mut notes = Vec::new();
    // Each client holds a connection; the server's answers need a few more.
    if open_files > 0 && open_files < args.clients as u64 + 64 {
        notes.push(format!(
            "the open-file limit ({open_files}) is below --clients + 64: connections may fail"
        ));
    }

    let mut admin = None;
    let mut server_timeout = None;
    if let Some(token) = &args.admin_token {
        let api = AdminApi::new(endpoint.http().clone(), &api_base(&args, &endpoint), token);
        match api.session_timeout().await {
            Ok(t) => {
                server_timeout = Some(t);
                admin = Some(api);
            }
            Err(e) => notes.push(format!(
                "no usable health API ({e}); lifecycle checks probe for 404s"
            )),
        }
    }
    let idle_timeout = args.idle_timeout.or(server_timeout);
    let needs_sessions = matches!(args.scenario, Scenario::Lifecycle | Scenario::Reconnect);
    if needs_sessions {
        if idle_timeout.is_none() {
            return Err(Error::Options(format!(
                "the {:?} scenario needs the server's idle timeout: pass --idle-timeout \
                 (or --admin-token for a server with sessiongate's health API)",
                args.scenario
            )));
        }
        if !pre.session_ids {
            return Err(Error::Setup(format!(
                "{} assigns no Mcp-Session-Id: there are no sessions to check",
                args.url
            )));
        }
    }
    if args.scenario == Scenario::Reconnect && !pre.reconnect_tokens {
        notes.push("the server offers no reconnect token; dropped sessions are opened anew".into());
    }
    let idle_time = args.idle_time.unwrap_or(DEFAULT_IDLE_TIME);
    if args.scenario == Scenario::Mixed {
        if let Some(t) = idle_timeout.filter(|t| idle_time >= *t) {
            return Err(Error::Options(format!(
                "--idle-time {} must be below the idle timeout {}",
                humantime::format_duration(idle_time),
                humantime::format_duration(t)
            )));
        }
    }

    // Lifecycle: the first share of the sessionful clients goes idle.
    let mut idle_clients = vec![false; args.clients];
    if args.scenario == Scenario::Lifecycle {
        let sessionful: Vec<usize> = (0..args.clients)
            .filter(|i| !args.protocol.for_client(*i).1)
            .collect();
        let share = (sessionful.len() as f64 * args.idle_fraction).round() as usize;
        let n = if args.idle_fraction > 0.0 {
            share.max(1)
        } else {
            0
        };
        for i in sessionful.into_iter().take(n) {
            idle_clients[i] = true;
        }
    }
    let idle_count = idle_clients.iter().filter(|i| **i).count();

    let (stop_tx, stop) = watch::channel(false);
    let stats = Arc::new(Stats::default());
    let checks = Arc::new(Checks::default());
    let started = Instant::now();
    let (deadline, length) = match (args.scenario, args.iterations, args.duration) {
        (Scenario::Lifecycle, _, _) => (None, Length::Units(args.clients as u64)),
        (_, Some(k), _) => (None, Length::Units(k * args.clients as u64)),
        (_, None, d) => {
            let d = d.unwrap_or(DEFAULT_DURATION);
            (Some(started + d), Length::Time(d))
        }
    };
    let ctx = Arc::new(Ctx {
        endpoint: endpoint.clone(),
        stats: stats.clone(),
        checks: checks.clone(),
        tools,
        admin,
        idle_timeout,
        idle_time,
        args: args.clone(),
        plan: Plan {
            deadline,
            iterations: args.iterations,
        },
        stop,
        idle_pending: AtomicUsize::new(idle_count),
        idle_clients,
    });
    let progress = Progress::start(
        stats.clone(),
        length,
        format!("{:?} x{}", args.scenario, args.clients).to_lowercase(),
    );
    let cpu_before = os::cpu_seconds();
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| tokio::spawn(scenario::client(ctx.clone(), i)))
        .collect();
    let mut interrupted = false;
    for t in tasks {
        if t.await.is_err() {
            notes.push("a client task panicked".into());
        }
    }
    if *ctx.stop.borrow() {
        interrupted = true;
        notes.push("interrupted: the report covers the run until Ctrl-C".into());
    }
    interrupt.abort();
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = os::cpu_seconds() - cpu_before;
    progress.finish();

    let totals = stats.totals();
    let check_totals = checks.totals();
    let mut lags = check_totals.lags.clone();
    lags.sort_by(f64::total_cmp);
    let expiry = (args.scenario == Scenario::Lifecycle).then(|| Expiry {
        method: if ctx.admin.is_some() {
            "health API".into()
        } else {
            "404 probe".into()
        },
        idle_timeout_s: idle_timeout.unwrap_or_default().as_secs_f64(),
        tolerance_s: args.tolerance.as_secs_f64(),
        lag_s_p50: lags.get(lags.len() / 2).copied(),
        lag_s_max: lags.last().copied(),
        lag_s_min: lags.first().copied(),
    });
    let passed_checks = check_totals.tallies.values().map(|t| t.passed).sum();
    let failed_checks = checks.failed();
    let too_many_errors = args.max_errors.is_some_and(|m| totals.errors > m);
    if too_many_errors {
        notes.push(format!(
            "{} errors, more than --max-errors {}",
            totals.errors,
            args.max_errors.unwrap_or_default()
        ));
    }
    Ok(Report {
        scenario: args.scenario,
        protocol: args.protocol.to_string(),
        clients: args.clients,
        elapsed_s: elapsed,
        requests: totals.requests,
        errors: totals.errors,
        requests_per_second: totals.requests as f64 / elapsed.max(1e-9),
        latency_ms: totals.latency,
        by_operation: totals.by_op,
        errors_by_kind: totals.error_kinds,
        sessions: report::Sessions {
            created: totals.created,
            deleted: totals.deleted,
            expired: totals.expired,
            abandoned: totals.abandoned,
            reconnected: totals.reconnected,
        },
        answers_verified: totals.verified,
        checks: report::Checks {
            passed: passed_checks,
            failed: failed_checks,
            by_check: check_totals.tallies,
            failures: check_totals.failures,
            expiry,
        },
        tester: report::Tester {
            cpu_seconds: cpu,
            cpu_cores: cpu / elapsed.max(1e-9),
            max_rss_mib: os::max_rss_kib() as f64 / 1024.0,
        },
        server: report::Server {
            url: args.url.clone(),
            tools: ctx.tools.names(),
            session_ids: pre.session_ids,
            reconnect_tokens: pre.reconnect_tokens,
            health_api: ctx.admin.is_some(),
        },
        notes,
        passed: failed_checks == 0 && !too_many_errors && !interrupted,
    })
}
