//! sessiongate's management API, as the lifecycle checks read it: the
//! health report (for the configured idle timeout) and one session's record.

use std::time::Duration;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A bearer-authenticated client of `/api/mcp/...`.
pub struct AdminApi {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// What the checks read of a session record.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub active: bool,
    pub last_activity: Option<OffsetDateTime>,
    pub disconnected_at: Option<OffsetDateTime>,
    pub disconnect_reason: Option<String>,
    pub request_count: Option<u64>,
    pub reconnect_count: Option<u64>,
}

fn timestamp(v: &Value) -> Option<OffsetDateTime> {
    v.as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

impl AdminApi {
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> AdminApi {
        AdminApi {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    async fn get(&self, path: &str) -> Result<Option<Value>, String> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!("GET {url}: {status}"));
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| format!("GET {url}: {e}"))
    }

    /// The server's idle timeout, from `GET /api/mcp/sessions/health`.
    pub async fn session_timeout(&self) -> Result<Duration, String> {
        let report = self
            .get("/api/mcp/sessions/health")
            .await?
            .ok_or("no health API at /api/mcp/sessions/health")?;
        report["session_timeout"]
            .as_f64()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| "the health report has no valid session_timeout".into())
    }

    /// `GET /api/mcp/sessions/{id}`; `None` for an unknown session.
    pub async fn session(&self, id: &str) -> Result<Option<SessionView>, String> {
        let Some(body) = self.get(&format!("/api/mcp/sessions/{id}")).await? else {
            return Ok(None);
        };
        let s = &body["session"];
        Ok(Some(SessionView {
            active: s["status"] == "active",
            last_activity: timestamp(&s["last_activity"]),
            disconnected_at: timestamp(&s["disconnected_at"]),
            disconnect_reason: s["disconnect_reason"].as_str().map(str::to_string),
            request_count: s["request_count"].as_u64(),
            reconnect_count: s["reconnect_count"].as_u64(),
        }))
    }
}
