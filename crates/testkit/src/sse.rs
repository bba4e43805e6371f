//! Server-sent events read off an HTTP response as they arrive, so a test
//! can act between two events of one stream.

use std::time::Duration;

use serde_json::Value;

/// How long a stream may stay silent before the test fails.
const SILENCE: Duration = Duration::from_secs(10);

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

impl SseEvent {
    /// The JSON-RPC message the event carries (`None` for priming events).
    pub fn message(&self) -> Option<Value> {
        (!self.data.is_empty()).then(|| serde_json::from_str(&self.data).unwrap())
    }
}

/// Reads server-sent events off a response as they arrive.
pub struct SseReader {
    response: reqwest::Response,
    buf: String,
}

impl SseReader {
    /// Panics unless the response is an event stream.
    pub fn new(response: reqwest::Response) -> Self {
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        SseReader {
            response,
            buf: String::new(),
        }
    }

    /// The next event a client would dispatch (comments and blocks without
    /// a data line skipped), or `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(SILENCE, self.response.chunk())
                .await
                .expect("no SSE data within 10 s")
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every remaining event until the server ends the stream.
    pub async fn rest(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(e) = self.next().await {
            events.push(e);
        }
        events
    }

    /// The messages of the events left, to the stream's end.
    pub async fn messages(self) -> Vec<Value> {
        self.rest()
            .await
            .iter()
            .filter_map(SseEvent::message)
            .collect()
    }
}

/// One event's block of lines; `None` when it has no data line, as a client
/// dispatches no such event (`EventSource` semantics): only comments, or an
/// id or retry hint alone.
fn parse(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent::default();
    let mut data = false;
    for line in block.lines() {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "id" => event.id = Some(value.to_string()),
            "data" => {
                if data {
                    event.data.push('\n');
                }
                event.data.push_str(value);
                data = true;
            }
            "retry" => event.retry = value.parse().ok(),
            _ => {}
        }
    }
    data.then_some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_join_multi_line_data_and_skip_comments() {
        let event = parse("id: 7\ndata: {\"a\":\ndata: 1}\nretry: 500\n: note\n\n").unwrap();
        assert_eq!(event.id.as_deref(), Some("7"));
        assert_eq!(event.data, "{\"a\":\n1}");
        assert_eq!(event.retry, Some(500));
        assert_eq!(event.message().unwrap()["a"], 1);
    }

    #[test]
    fn a_block_of_comments_is_no_event() {
        assert_eq!(parse(": keep-alive\n\n"), None);
    }

    #[test]
    fn a_block_without_a_data_line_is_no_event() {
        assert_eq!(parse("id: 3\nretry: 500\n\n"), None);
    }

    #[test]
    fn empty_data_lines_are_kept() {
        assert_eq!(parse("data:\ndata: a\n\n").unwrap().data, "\na");
    }

    #[test]
    fn a_priming_event_carries_no_message() {
        let event = parse("id: 0\ndata:\n\n").unwrap();
        assert_eq!(event.message(), None);
    }
}
