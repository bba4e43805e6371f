//! An incremental parser of `text/event-stream` bodies: bytes in, complete
//! events out, whatever the chunk boundaries.

/// One dispatched server-sent event.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Event {
    pub id: Option<String>,
    pub data: String,
}

/// Feeds on chunks; keeps the unfinished line and event between them.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    event: Event,
    has_data: bool,
    /// A chunk ended on `\r`: a `\n` opening the next one belongs to it.
    after_cr: bool,
}

impl Parser {
    /// Parses a chunk; returns the events it completed. Events without data
    /// (priming events, bare ids) are not returned, but their ids are kept
    /// for the next event as the SSE rules say.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&line) {
                        out.push(event);
                    }
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    fn line_done(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            self.has_data = false;
            let data = std::mem::take(&mut self.event.data);
            return (!data.is_empty()).then(|| Event {
                id: self.event.id.clone(),
                data,
            });
        }
        let text = String::from_utf8_lossy(line);
        let (name, value) = text.split_once(':').unwrap_or((&text, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.event.id = Some(value.to_string()),
            // Comments (empty name), `event`, `retry` and unknown fields carry
            // nothing the client needs.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_across_chunk_boundaries_and_line_endings() {
        let mut p = Parser::default();
        assert!(p
            .feed(b"id: r-1\ndata:\nretry: 1000\n\n: keep-alive\n\nid: r-")
            .is_empty());
        let events = p.feed(b"2\r\ndata: {\"a\":\r\ndata: 1}\r\r");
        assert_eq!(
            events,
            vec![Event {
                id: Some("r-2".into()),
                data: "{\"a\":\n1}".into()
            }]
        );
        let events = p.feed(b"\ndata: x\n\n");
        assert_eq!(events[0].data, "x");
        assert_eq!(events[0].id.as_deref(), Some("r-2"));
    }
}
