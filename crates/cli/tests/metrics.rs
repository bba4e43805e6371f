//! `/metrics`: Prometheus text format that a real parser reads, behind the
//! admin token, with counters and histograms that move with traffic.

mod common;

use common::{TestServer, ADMIN_TOKEN};
use serde_json::json;

async fn scrape(t: &TestServer) -> prometheus_parse::Scrape {
    let response = t
        .http
        .get(format!("{}/metrics", t.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of a counter or gauge sample, 0 if absent.
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// The observation count of a histogram's series.
fn observations(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            _ => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_traffic() {
    let t = TestServer::start().await;
    let unauthorized = t
        .http
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    let before = scrape(&t).await;
    let echo = [
        ("method", "tools/call"),
        ("tool", "echo"),
        ("status", "success"),
    ];
    let session = t.initialize("2025-11-25", "claude-code").await;
    for _ in 0..3 {
        t.call_tool(&session, "echo", json!({"text": "x"})).await;
    }
    // A made-up tool is counted, but under "unknown".
    t.call_tool(&session, "no_such_tool_1234", json!({})).await;
    let deleted = t.delete(&session).await;
    assert_eq!(deleted.status(), 200);

    let after = scrape(&t).await;
    assert_eq!(
        observations(&after, "sessiongate_request_duration_seconds", &echo)
            - observations(&before, "sessiongate_request_duration_seconds", &echo),
        3.0
    );
    assert!(after
        .samples
        .iter()
        .all(|s| s.labels.get("tool") != Some("no_such_tool_1234")));
    assert!(
        observations(
            &after,
            "sessiongate_request_duration_seconds",
            &[("tool", "unknown")]
        ) >= 1.0
    );
    assert!(
        value(&after, "sessiongate_sessions_created_total", &[])
            > value(&before, "sessiongate_sessions_created_total", &[])
    );
    assert!(
        value(
            &after,
            "sessiongate_sessions_ended_total",
            &[("reason", "client_disconnect")]
        ) > value(
            &before,
            "sessiongate_sessions_ended_total",
            &[("reason", "client_disconnect")]
        )
    );
    // Gauges are this server's own figures.
    assert_eq!(
        value(&after, "sessiongate_sessions", &[("status", "active")]),
        0.0
    );
    assert_eq!(
        value(
            &after,
            "sessiongate_sessions",
            &[("status", "disconnected")]
        ),
        1.0
    );
    assert!(after
        .docs
        .contains_key("sessiongate_request_duration_seconds"));
    t.stop().await;
}
