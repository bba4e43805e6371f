//! The admin client: the operator's commands against a running server's
//! management API — `sessions list|show|terminate` and `health` (with the
//! gateway's upstreams), as tables
//! or `--json`, and `watch`, the live event stream, reconnecting across
//! server restarts.
//! They find the server's URL and admin token the way `serve` finds its
//! settings: flags, then `SESSIONGATE_*`, then the config file, then the
//! data directory's `admin-token` file.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;
use sessiongate_api::auth::ADMIN_TOKEN_FILE;

use crate::config::{ListenAddr, Settings};

/// Where the server is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Base URL of the running server; http:// is assumed without a scheme
    /// [default: http://<listen> of the config file or SESSIONGATE_LISTEN,
    /// else http://127.0.0.1:8051]
    #[arg(long, global = true, env = "SESSIONGATE_URL", value_parser = base_url)]
    pub url: Option<String>,

    /// Admin token [default: the config file's admin_token, else read from
    /// the data directory's admin-token file]
    #[arg(
        long,
        global = true,
        env = "SESSIONGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// The server's data directory, holding its admin-token file [default:
    /// the config file's data_dir, else as for `serve`]
    #[arg(long, global = true, env = "SESSIONGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// The server's TOML config file, for its listen, admin_token and data_dir
    #[arg(long, global = true, env = "SESSIONGATE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Print JSON instead of text: the API's response, or for `watch` each
    /// event as sent
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, newest first
    List {
        /// Only sessions with this status (active or disconnected)
        #[arg(long)]
        status: Option<String>,
        /// Only sessions of this client type (e.g. "Claude Code")
        #[arg(long)]
        client_type: Option<String>,
        /// How many to show
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// How many to skip
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Show one session with its recent requests
    Show { session_id: String },
    /// End an active session (reason: admin_terminated)
    Terminate { session_id: String },
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// The server `serve` would be with the same config file and
    /// environment, and its admin token.
    fn new(conn: &Connection) -> anyhow::Result<Api> {
        let file = match &conn.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        let flags = Settings {
            admin_token: conn.admin_token.clone(),
            data_dir: conn.data_dir.clone(),
            ..Default::default()
        };
        let config = flags.or(Settings::from_env()?).or(file).resolve()?;
        let token = match config.admin_token {
            Some(token) => token,
            None => read_admin_token(&config.data_dir)?,
        };
        let base = match &conn.url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", reachable(&config.listen)),
        };
        Ok(Api {
            http: reqwest::Client::new(),
            base,
            token,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let response = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach {url}: {}; is `sessiongate serve` running?",
                    root_cause(&e)
                )
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let detail = body["detail"].as_str().unwrap_or("no detail");
            bail!("{url}: {status}: {detail}");
        }
        Ok(body)
    }
}

/// The token `serve` saved in its data directory; when there is none, says
/// every way to name the right one.
fn read_admin_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let why = match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_string()),
        Ok(_) => "it is empty".to_string(),
        Err(e) => e.to_string(),
    };
    bail!(
        "no admin token: cannot read {} ({why}); pass the server's data directory \
         (--data-dir or SESSIONGATE_DATA_DIR), its config file (--config or \
         SESSIONGATE_CONFIG), or the token (--admin-token or SESSIONGATE_ADMIN_TOKEN)",
        path.display()
    )
}

/// The address to reach a server listening on `listen`: a server on every
/// interface is reached on loopback.
fn reachable(listen: &ListenAddr) -> String {
    let (host, port) = listen.host_port();
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)).to_string()
        }
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, port)).to_string()
        }
        _ => listen.to_string(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub async fn sessions(conn: Connection, cmd: SessionsCommand) -> anyhow::Result<()> {
    let api = Api::new(&conn)?;
    match cmd {
        SessionsCommand::List {
            status,
            client_type,
            limit,
            offset,
        } => {
            let mut query = vec![("limit", limit.to_string()), ("offset", offset.to_string())];
            query.extend(status.map(|s| ("status", s)));
            query.extend(client_type.map(|c| ("client_type", c)));
            let body = api
                .call(reqwest::Method::GET, "/api/mcp/sessions", &query)
                .await?;
            if conn.json {
                print_json(&body);
                return Ok(());
            }
            let rows = body["sessions"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .map(|s| {
                            [
                                "session_id",
                                "client_type",
                                "status",
                                "protocol_version",
                                "connected_at",
                                "last_activity",
                                "request_count",
                                "disconnect_reason",
                            ]
                            .iter()
                            .map(|k| text(&s[*k]))
                            .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            println!(
                "{}",
                table(
                    &[
                        "SESSION",
                        "CLIENT",
                        "STATUS",
                        "PROTOCOL",
                        "CONNECTED",
                        "LAST ACTIVITY",
                        "REQUESTS",
                        "REASON"
                    ],
                    rows
                )
            );
            println!(
                "\n{} shown of {} ({} active, idle timeout {} s)",
                body["sessions"].as_array().map_or(0, Vec::len),
                text(&body["total"]),
                text(&body["active_sessions"]),
                text(&body["session_timeout"]),
            );
        }
        SessionsCommand::Show { session_id } => {
            let body = api
                .call(
                    reqwest::Method::GET,
                    &format!("/api/mcp/sessions/{session_id}"),
                    &[],
                )
                .await?;
            if conn.json {
                print_json(&body);
                return Ok(());
            }
            let s = &body["session"];
            if let Some(obj) = s.as_object() {
                for (k, v) in obj {
                    println!("{k:<22} {}", text(v));
                }
            }
            let rows = body["requests"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|r| {
                            [
                                "started_at",
                                "method",
                                "tool_name",
                                "duration_ms",
                                "status",
                                "error_message",
                            ]
                            .iter()
                            .map(|k| text(&r[*k]))
                            .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            println!(
                "\n{}",
                table(
                    &["STARTED", "METHOD", "TOOL", "MS", "STATUS", "ERROR"],
                    rows
                )
            );
        }
        SessionsCommand::Terminate { session_id } => {
            let body = api
                .call(
                    reqwest::Method::DELETE,
                    &format!("/api/mcp/sessions/{session_id}"),
                    &[],
                )
                .await?;
            if conn.json {
                print_json(&body);
            } else {
                println!("terminated {session_id}");
            }
        }
    }
    Ok(())
}

pub async fn health(conn: Connection) -> anyhow::Result<()> {
    let api = Api::new(&conn)?;
    let mut h = api
        .call(reqwest::Method::GET, "/api/mcp/sessions/health", &[])
        .await?;
    let upstreams = api
        .call(reqwest::Method::GET, "/api/mcp/upstreams", &[])
        .await?["upstreams"]
        .take();
    if conn.json {
        h["upstreams"] = upstreams;
        print_json(&h);
        return Ok(());
    }
    let s = &h["status_breakdown"];
    let a = &h["age_distribution"];
    let c = &h["connection_health"];
    println!(
        "sessions   active {}  disconnected {}  total {}",
        text(&s["active"]),
        text(&s["disconnected"]),
        text(&s["total"])
    );
    println!(
        "idle age   healthy {}  aging {}  stale {}",
        text(&a["healthy"]),
        text(&a["aging"]),
        text(&a["stale"])
    );
    println!(
        "last 24 h  {} sessions  {} /h  avg {} s  disconnect rate {} %",
        text(&c["total_sessions_24h"]),
        text(&c["sessions_per_hour"]),
        text(&c["avg_duration_seconds"]),
        text(&c["disconnect_rate_percent"])
    );
    let rows = h["recent_activity"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| {
                    [
                        "session_id",
                        "client_type",
                        "status",
                        "age_minutes",
                        "uptime_minutes",
                    ]
                    .iter()
                    .map(|k| text(&r[*k]))
                    .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    println!(
        "\n{}",
        table(
            &["SESSION", "CLIENT", "STATUS", "IDLE MIN", "UPTIME MIN"],
            rows
        )
    );
    print_upstreams(&upstreams);
    Ok(())
}

/// The gateway's upstreams, one line each, after the sessions.
fn print_upstreams(upstreams: &Value) {
    let upstreams = upstreams.as_array().map(Vec::as_slice).unwrap_or_default();
    if upstreams.is_empty() {
        println!("\nupstreams  none configured");
        return;
    }
    let rows = upstreams
        .iter()
        .map(|u| {
            let transport = match u["mode"].as_str() {
                Some(mode) => format!("{} {mode}", text(&u["transport"])),
                None => text(&u["transport"]),
            };
            vec![
                text(&u["name"]),
                transport,
                text(&u["status"]),
                text(&u["processes"]),
                text(&u["restarts"]),
                text(&u["sessions_mapped"]),
                text(&u["p50_ms"]),
                text(&u["p99_ms"]),
                text(&u["last_error"]),
            ]
        })
        .collect();
    println!(
        "\n{}",
        table(
            &[
                "UPSTREAM",
                "TRANSPORT",
                "STATUS",
                "PROCESSES",
                "RESTARTS",
                "SESSIONS",
                "P50 MS",
                "P99 MS",
                "LAST ERROR"
            ],
            rows
        )
    );
}

/// First wait before `watch` reconnects; doubled after each failed attempt.
const RECONNECT_FIRST: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
/// The server pings every 20 s; a half-open connection never fails by itself,
/// so a stream silent for three pings counts as lost.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why a connection to the event stream failed.
enum ConnectError {
    /// The server refused the token: retrying cannot help.
    Refused(anyhow::Error),
    /// The server answered with another error status, as while it starts.
    Status(anyhow::Error),
    /// Nothing answered: the server is down, restarting or elsewhere.
    Unreachable(anyhow::Error),
}

/// `sessiongate watch`: prints the live session event stream until
/// interrupted, a line per event (`--json`: the events as sent). When the
/// connection drops it reconnects with backoff, saying so on stderr, and
/// goes on from the server's fresh snapshot.
pub async fn watch(conn: Connection) -> anyhow::Result<()> {
    let api = Api::new(&conn)?;
    let url = format!("{}/api/mcp/ws/sessions", api.base.replacen("http", "ws", 1));
    // A first connection that fails is an error, so a wrong URL shows at once.
    let mut ws = connect(&url, &api.token).await.map_err(|e| match e {
        ConnectError::Refused(e) | ConnectError::Status(e) => e,
        ConnectError::Unreachable(e) => anyhow!("{e}; is `sessiongate serve` running?"),
    })?;
    loop {
        let lost = follow(&mut ws, conn.json).await?;
        let mut delay = RECONNECT_FIRST;
        eprintln!("connection lost: {lost}; reconnecting in {delay:?}");
        ws = loop {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RECONNECT_MAX);
            match connect(&url, &api.token).await {
                Ok(ws) => break ws,
                Err(ConnectError::Refused(e)) => return Err(e),
                Err(ConnectError::Status(e) | ConnectError::Unreachable(e)) => {
                    eprintln!("cannot reconnect: {e:#}; retrying in {delay:?}")
                }
            }
        };
        eprintln!("reconnected");
    }
}

async fn connect(url: &str, token: &str) -> Result<Socket, ConnectError> {
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Error};

    let mut request = url
        .into_client_request()
        .with_context(|| format!("{url} is not a WebSocket URL"))
        .map_err(ConnectError::Refused)?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .context("the admin token is not a valid header value")
            .map_err(ConnectError::Refused)?,
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(Error::Http(r)) => {
            let e = anyhow!("{url}: {}", r.status());
            match r.status().as_u16() {
                401 | 403 => Err(ConnectError::Refused(e)),
                _ => Err(ConnectError::Status(e)),
            }
        }
        Err(e) => Err(ConnectError::Unreachable(anyhow!(
            "cannot reach {url}: {e}"
        ))),
    }
}

/// Prints the stream's events until it ends; returns why it ended.
async fn follow(ws: &mut Socket, json: bool) -> anyhow::Result<String> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    loop {
        let message = match tokio::time::timeout(SILENCE_LIMIT, ws.next()).await {
            Err(_) => return Ok(format!("nothing received for {SILENCE_LIMIT:?}")),
            Ok(None) | Ok(Some(Ok(Message::Close(_)))) => {
                return Ok("the server closed the stream".into())
            }
            Ok(Some(Err(e))) => return Ok(e.to_string()),
            Ok(Some(Ok(message))) => message,
        };
        let Message::Text(text) = message else {
            continue;
        };
        if json {
            println!("{text}");
            continue;
        }
        let event: Value = serde_json::from_str(&text).context("the server sent bad JSON")?;
        println!("{}", watch_line(&event));
    }
}

/// One event as a human-readable line.
fn watch_line(e: &Value) -> String {
    let s = &e["session"];
    let at = e["timestamp"].as_str().unwrap_or("");
    let id = s["session_id"].as_str().unwrap_or("?");
    let counts = |h: &Value| {
        let b = &h["status_breakdown"];
        format!(
            "active {}, disconnected {}, total {}",
            b["active"], b["disconnected"], b["total"]
        )
    };
    match e["type"].as_str().unwrap_or("") {
        "snapshot" => format!("{at} snapshot: {}", counts(&e["health"])),
        "health_update" => format!(
            "{} health: {}",
            e["data"]["timestamp"].as_str().unwrap_or(""),
            counts(&e["data"])
        ),
        "session_created" => format!(
            "{at} created      {id} {} ({})",
            s["client_type"].as_str().unwrap_or("?"),
            s["protocol_version"].as_str().unwrap_or("?")
        ),
        "session_updated" => format!("{at} active       {id} requests {}", s["request_count"]),
        "session_reconnected" => format!(
            "{at} reconnected  {id} (reconnect {})",
            s["reconnect_count"]
        ),
        "session_disconnected" => format!(
            "{at} disconnected {id} ({})",
            e["reason"].as_str().unwrap_or("?")
        ),
        "upstream_up" => format!("{at} upstream up   {}", text(&e["upstream"])),
        "upstream_down" => format!(
            "{at} upstream down {}: {}",
            text(&e["upstream"]),
            text(&e["error"])
        ),
        "upstream_restarted" => format!(
            "{at} upstream restarted {} for {}: {}",
            text(&e["upstream"]),
            text(&e["session_id"]),
            text(&e["reason"])
        ),
        "lagged" => format!("lagged: {} events missed; a snapshot follows", e["missed"]),
        other => format!("{other}: {e}"),
    }
}

/// The innermost cause ("Connection refused") under reqwest's layers.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut error = error;
    while let Some(source) = error.source() {
        error = source;
    }
    error.to_string()
}

/// A server's base URL as given to `--url`: `HOST:PORT` means
/// `http://HOST:PORT`, as the address `serve --listen` takes.
fn base_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    let url = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(format!(
            "{s:?} is not a server URL; use http://HOST:PORT or https://HOST:PORT"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_names_the_upstream_and_what_happened() {
        let at = "2026-12-03T12:00:00Z";
        let line = |e: Value| watch_line(&e);
        assert_eq!(
            line(
                serde_json::json!({"type": "upstream_down", "upstream": "files",
                "error": "exited at once", "timestamp": at})
            ),
            format!("{at} upstream down files: exited at once")
        );
        assert_eq!(
            line(
                serde_json::json!({"type": "upstream_restarted", "upstream": "files",
                "session_id": "ab", "reason": "killed", "timestamp": at})
            ),
            format!("{at} upstream restarted files for ab: killed")
        );
        assert_eq!(
            line(serde_json::json!({"type": "upstream_up", "upstream": "files", "timestamp": at})),
            format!("{at} upstream up   files")
        );
    }

    #[test]
    fn a_server_on_every_interface_is_reached_on_loopback() {
        for (listen, reached) in [
            ("0.0.0.0:8051", "127.0.0.1:8051"),
            ("[::]:9000", "[::1]:9000"),
            ("10.0.0.5:8051", "10.0.0.5:8051"),
            ("localhost:8051", "localhost:8051"),
        ] {
            let listen: ListenAddr = listen.parse().unwrap();
            assert_eq!(reachable(&listen), reached);
        }
    }
}
