//! The operator's commands against a running server's management API:
//! `sessions list|show|terminate` and `health`, as tables or `--json`, and
//! `watch`, the live event stream.
//! They find the server's URL and admin token the way `serve` finds its
//! settings: flags, then `SESSIONGATE_*`, then the config file, then the
//! data directory's `admin-token` file.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;
use sessiongate_api::auth::ADMIN_TOKEN_FILE;

use crate::config::Settings;

/// Where the server is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Base URL of the running server [default: http://<listen> of the
    /// config file or SESSIONGATE_LISTEN, else http://127.0.0.1:8051]
    #[arg(long, global = true, env = "SESSIONGATE_URL")]
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
            None => format!("http://{}", reachable(config.listen)),
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
            .with_context(|| format!("cannot reach {url}; is `sessiongate serve` running?"))?;
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
fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, listen.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, listen.port()).into(),
        _ => listen,
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
    let h = api
        .call(reqwest::Method::GET, "/api/mcp/sessions/health", &[])
        .await?;
    if conn.json {
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
    Ok(())
}

/// `sessiongate watch`: prints the live session event stream until
/// interrupted, a line per event (`--json`: the events as sent).
pub async fn watch(conn: Connection) -> anyhow::Result<()> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let api = Api::new(&conn)?;
    let url = format!("{}/api/mcp/ws/sessions", api.base.replacen("http", "ws", 1));
    let mut request = url
        .as_str()
        .into_client_request()
        .with_context(|| format!("{url} is not a WebSocket URL"))?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", api.token)
            .parse()
            .context("the admin token is not a valid header value")?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                anyhow::anyhow!("{url}: {}", r.status())
            }
            e => anyhow::anyhow!("cannot reach {url}: {e}; is `sessiongate serve` running?"),
        })?;
    while let Some(message) = ws.next().await {
        let text = match message.context("the event stream failed")? {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        if conn.json {
            println!("{text}");
            continue;
        }
        let event: Value = serde_json::from_str(&text).context("the server sent bad JSON")?;
        println!("{}", watch_line(&event));
    }
    Ok(())
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
        "lagged" => format!("lagged: {} events missed; a snapshot follows", e["missed"]),
        other => format!("{other}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_on_every_interface_is_reached_on_loopback() {
        for (listen, reached) in [
            ("0.0.0.0:8051", "127.0.0.1:8051"),
            ("[::]:9000", "[::1]:9000"),
            ("10.0.0.5:8051", "10.0.0.5:8051"),
        ] {
            let listen: SocketAddr = listen.parse().unwrap();
            assert_eq!(reachable(listen).to_string(), reached);
        }
    }
}
