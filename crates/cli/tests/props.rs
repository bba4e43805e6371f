//! Property tests of what the program reads from strangers: configuration
//! (durations, TOML files, listen addresses), and — on a real server on an
//! ephemeral port — random bodies and headers POSTed to `/mcp` and random
//! WebSocket handshakes and frames on the live stream. Nothing may panic;
//! every request gets a well-formed answer, never a 5xx or a hang.
//! `scripts/fuzz` runs these with many more cases.

mod common;

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use common::{TestServer, ADMIN_TOKEN};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use sessiongate::config::{parse_duration, ConfigError, ListenAddr, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a request may take before it counts as a hang.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Cases of the real-server properties: each is a few requests, so fewer
/// than proptest's default unless `PROPTEST_CASES` asks for more.
fn server_config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    ProptestConfig::with_cases(cases)
}

/// One server for every case: starting one per case would be most of the
/// run. Its runtime lives as long as the test binary.
fn server() -> &'static (tokio::runtime::Runtime, TestServer) {
    static SERVER: OnceLock<(tokio::runtime::Runtime, TestServer)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(TestServer::start());
        (rt, server)
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-zA-Z_/.]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ------------------------------------------------------------- configuration

const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("days", 86_400_000),
];

/// A TOML value of any type, or a duration-looking string.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<String>().prop_map(|s| toml_string(&s)),
        "[0-9]{1,25}(ms|s|m|h|d|days|y|ns)?".prop_map(|s| toml_string(&s)),
        "\\[[0-9a-z\", ]{0,20}\\]",
        "(127\\.0\\.0\\.1|\\[::1\\]|[0-9.:]{1,20}|localhost):[0-9]{1,6}"
            .prop_map(|s| toml_string(&s)),
    ]
}

fn toml_string(s: &str) -> String {
    Value::from(s).to_string()
}

const KEYS: [&str; 27] = [
    "listen",
    "data_dir",
    "database_url",
    "admin_token",
    "idle_timeout",
    "activity_flush_interval",
    "request_log_flush_interval",
    "request_log_batch_rows",
    "request_log_queue",
    "request_log_retention",
    "health_aging_after",
    "health_stale_after",
    "keepalive_interval",
    "max_body_bytes",
    "allowed_origins",
    "allowed_hosts",
    "reconnect_token_ttl",
    "reconnect_key",
    "request_state_ttl",
    "event_log_keep",
    "event_log_retention",
    "sse_after",
    "stream_idle_close",
    "conformance",
    "log",
    "idle_timout",
    "",
];

proptest! {
    #[test]
    fn durations_parse_or_are_refused(s in any::<String>()) {
        let _ = parse_duration(&s);
    }

    #[test]
    fn durations_in_any_unit_parse_to_their_length(
        parts in proptest::collection::vec((0..1_000_000u64, 0..UNITS.len()), 1..4),
        space in proptest::sample::select(vec!["", " "]),
    ) {
        let text: Vec<String> = parts.iter().map(|(n, u)| format!("{n}{}", UNITS[*u].0)).collect();
        let millis: u64 = parts.iter().map(|(n, u)| n * UNITS[*u].1).sum();
        prop_assert_eq!(
            parse_duration(&text.join(space)),
            Ok(Duration::from_millis(millis)),
            "{:?}", text
        );
    }

    #[test]
    fn plain_numbers_are_seconds(n in any::<u64>()) {
        prop_assert_eq!(parse_duration(&n.to_string()), Ok(Duration::from_secs(n)));
    }

    /// Any file: settings or an error naming the problem, and settings
    /// resolve to a configuration or a refusal, never a panic.
    #[test]
    fn config_files_parse_and_resolve_or_are_refused(
        text in prop_oneof![
            any::<String>(),
            proptest::collection::vec(
                (proptest::sample::select(KEYS.to_vec()), toml_value()),
                0..6,
            )
            .prop_map(|lines| {
                lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect::<String>()
            }),
        ],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessiongate.toml");
        std::fs::File::create(&path).unwrap().write_all(text.as_bytes()).unwrap();
        match Settings::from_file(&path) {
            Ok(settings) => match settings.resolve() {
                Ok(_) | Err(ConfigError::Invalid(_)) => {}
                Err(e) => prop_assert!(false, "resolve failed with {e}"),
            },
            Err(ConfigError::Parse { .. }) => {}
            Err(e) => prop_assert!(false, "reading failed with {e}"),
        }
    }

    /// A listen address in a file is taken as itself when Rust's own parser
    /// takes it; anything else only as a host name (never a number) and a
    /// port.
    #[test]
    fn listen_addresses_are_addresses_or_host_names(
        addr in prop_oneof![
            any::<String>(),
            "(127\\.0\\.0\\.1|\\[::1?\\]|[0-9.:\\[\\]]{1,20}|localhost|0\\.0\\.0\\.0)(:[0-9]{1,6})?",
        ],
    ) {
        let parsed = toml::from_str::<Settings>(&format!("listen = {}", toml_string(&addr)))
            .ok()
            .and_then(|s| s.listen);
        match addr.parse::<std::net::SocketAddr>() {
            Ok(socket) => prop_assert_eq!(parsed, Some(ListenAddr::from(socket))),
            Err(_) => {
                if let Some(listen) = parsed {
                    let (host, port) = listen.host_port();
                    let (given_host, given_port) = addr.rsplit_once(':').unwrap();
                    prop_assert!(given_host.eq_ignore_ascii_case(host), "{addr}");
                    prop_assert!(given_port.bytes().all(|b| b.is_ascii_digit()), "{addr}");
                    prop_assert_eq!(given_port.parse::<u16>().ok(), Some(port));
                    prop_assert!(host.parse::<std::net::IpAddr>().is_err(), "{addr}");
                }
            }
        }
    }
}

// ----------------------------------------------------------- MCP over HTTP

const METHODS: [&str; 14] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "notifications/initialized",
    "notifications/cancelled",
    "no/such/method",
];

const TOOLS: [&str; 7] = [
    "echo",
    "health_check",
    "session_info",
    "list_sessions",
    "get_reconnect_token",
    "reconnect_session",
    "no_such_tool",
];

const VERSIONS: [&str; 5] = [
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
    "1999-01-01",
];

/// Where a case's `Mcp-Session-Id` comes from.
#[derive(Debug, Clone)]
enum SessionHeader {
    /// A session opened for the case at this revision.
    Live(&'static str),
    Given(Vec<u8>),
}

#[derive(Debug, Clone)]
struct McpCase {
    method: reqwest::Method,
    session: Option<SessionHeader>,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

/// Bytes a header value may hold: no control characters.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            8 => 0x20u8..0x7f,
            1 => 0x80u8..=0xff,
            1 => Just(b'\t'),
        ],
        0..40,
    )
}

fn one_of(values: &[&'static str]) -> impl Strategy<Value = Vec<u8>> {
    proptest::sample::select(values.to_vec()).prop_map(|v| v.as_bytes().to_vec())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn mcp_headers() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let content_type = prop_oneof![
        30 => one_of(&["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"]),
        1 => one_of(&["text/plain", "", "application/jsonx", "multipart/form-data"]),
        1 => header_bytes(),
    ];
    let accept = prop_oneof![
        12 => one_of(&["application/json, text/event-stream", "application/json", "text/event-stream", "*/*"]),
        4 => proptest::collection::vec(
            proptest::sample::select(vec![
                "application/json", "text/event-stream", "*/*", "application/*", "text/*",
                "text/html", "application/json;q=0", " text/event-stream ; q=0.5", "",
            ]),
            0..4,
        )
        .prop_map(|items| items.join(",").into_bytes()),
        1 => header_bytes(),
    ];
    let name = prop_oneof![
        one_of(&TOOLS),
        any::<String>().prop_map(|n| format!("=?base64?{}?=", b64(n.as_bytes())).into_bytes()),
        proptest::sample::select(TOOLS.to_vec()).prop_map(|n| format!(
            "=?base64?{}?=",
            b64(n.as_bytes())
        )
        .into_bytes()),
        header_bytes().prop_map(|b| [b"=?base64?".as_slice(), &b, b"?="].concat()),
        header_bytes(),
    ];
    let event_id = prop_oneof![
        "[rg][0-9a-f]{16}-[0-9]{1,3}".prop_map(String::into_bytes),
        header_bytes(),
    ];
    (
        proptest::option::weighted(0.95, content_type),
        proptest::option::weighted(0.9, accept),
        proptest::option::of(prop_oneof![one_of(&VERSIONS), header_bytes()]),
        proptest::option::of(prop_oneof![one_of(&METHODS), header_bytes()]),
        proptest::option::of(name),
        proptest::option::weighted(0.1, event_id),
        proptest::option::weighted(0.1, header_bytes()),
    )
        .prop_map(|(ct, accept, version, method, name, event, token)| {
            [
                ("content-type", ct),
                ("accept", accept),
                ("mcp-protocol-version", version),
                ("mcp-method", method),
                ("mcp-name", name),
                ("last-event-id", event),
                ("mcp-reconnect-token", token),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect()
        })
}

/// A JSON-RPC message of MCP, right or wrong in any member.
fn mcp_message() -> impl Strategy<Value = Value> {
    let meta = (
        proptest::option::of(prop_oneof![
            proptest::sample::select(VERSIONS.to_vec()).prop_map(Value::from),
            json_value()
        ]),
        proptest::option::of(prop_oneof![
            Just(json!({"name": "fuzz", "version": "1"})),
            json_value()
        ]),
        proptest::option::of(prop_oneof![Just(json!({})), json_value()]),
        proptest::option::of(json_value()),
    )
        .prop_map(|(version, info, caps, progress)| {
            let mut m = serde_json::Map::new();
            for (k, v) in [
                ("io.modelcontextprotocol/protocolVersion", version),
                ("io.modelcontextprotocol/clientInfo", info),
                ("io.modelcontextprotocol/clientCapabilities", caps),
                ("progressToken", progress),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        });
    let params = (
        proptest::option::of(prop_oneof![
            proptest::sample::select(TOOLS.to_vec()).prop_map(Value::from),
            json_value()
        ]),
        proptest::option::of(json_value()),
        proptest::option::of(json_value()),
        proptest::option::of(meta),
        proptest::option::of(proptest::sample::select(VERSIONS.to_vec())),
    )
        .prop_map(|(name, arguments, uri, meta, version)| {
            let mut m = serde_json::Map::new();
            for (k, v) in [
                ("name", name),
                ("arguments", arguments),
                ("uri", uri),
                ("_meta", meta),
                ("protocolVersion", version.map(Value::from)),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        });
    (
        proptest::option::weighted(
            0.7,
            prop_oneof![
                6 => any::<i64>().prop_map(Value::from),
                1 => any::<String>().prop_map(Value::from),
                1 => json_value(),
            ],
        ),
        prop_oneof![
            4 => proptest::sample::select(METHODS.to_vec()).prop_map(Value::from),
            1 => json_value(),
        ],
        proptest::option::weighted(0.8, prop_oneof![4 => params, 1 => json_value()]),
        proptest::option::weighted(0.05, json_value()),
    )
        .prop_map(|(id, method, params, result)| {
            let mut m = serde_json::Map::new();
            m.insert("jsonrpc".into(), json!("2.0"));
            m.insert("method".into(), method);
            for (k, v) in [("id", id), ("params", params), ("result", result)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

fn mcp_case() -> impl Strategy<Value = McpCase> {
    let method = prop_oneof![
        8 => Just(reqwest::Method::POST),
        1 => Just(reqwest::Method::GET),
        1 => Just(reqwest::Method::DELETE),
    ];
    let session = proptest::option::weighted(
        0.6,
        prop_oneof![
            3 => proptest::sample::select(VERSIONS[..3].to_vec()).prop_map(SessionHeader::Live),
            1 => "[0-9a-f]{32}".prop_map(|s| SessionHeader::Given(s.into_bytes())),
            1 => header_bytes().prop_map(SessionHeader::Given),
        ],
    );
    let body = prop_oneof![
        6 => mcp_message().prop_map(Body::Message),
        1 => proptest::collection::vec(mcp_message(), 0..4)
            .prop_map(|b| Body::Bytes(Value::from(b).to_string().into_bytes())),
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Body::Bytes),
    ];
    (method, session, mcp_headers(), body, any::<bool>()).prop_map(
        |(method, session, mut headers, body, coherent)| {
            let body = match body {
                Body::Message(m) => {
                    if coherent {
                        mirror_in_headers(&m, &mut headers);
                    }
                    m.to_string().into_bytes()
                }
                Body::Bytes(b) => b,
            };
            McpCase {
                method,
                session,
                headers,
                body,
            }
        },
    )
}

#[derive(Debug, Clone)]
enum Body {
    Message(Value),
    Bytes(Vec<u8>),
}

/// Sets the headers a 2026-07-28 request mirrors from its body, so that
/// cases get past the header checks to the methods.
fn mirror_in_headers(message: &Value, headers: &mut Vec<(&'static str, Vec<u8>)>) {
    let params = &message["params"];
    let version = &params["_meta"]["io.modelcontextprotocol/protocolVersion"];
    let name = params["name"].as_str().or(params["uri"].as_str());
    for (header, value) in [
        ("mcp-method", message["method"].as_str()),
        ("mcp-protocol-version", version.as_str()),
        ("mcp-name", name),
    ] {
        headers.retain(|(k, _)| *k != header);
        if let Some(v) = value.filter(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b))) {
            headers.push((header, v.as_bytes().to_vec()));
        }
    }
}

async fn run_mcp_case(server: &TestServer, case: McpCase) -> Result<(), TestCaseError> {
    let mut request = server
        .http
        .request(case.method.clone(), server.mcp_url())
        .body(case.body);
    let session = match case.session {
        Some(SessionHeader::Live(version)) => {
            Some(server.initialize(version, "fuzz").await.into_bytes())
        }
        Some(SessionHeader::Given(id)) => Some(id),
        None => None,
    };
    for (name, value) in case
        .headers
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .chain(session.map(|s| ("mcp-session-id", s)))
    {
        request = request.header(
            name,
            reqwest::header::HeaderValue::from_bytes(&value).unwrap(),
        );
    }
    let response = tokio::time::timeout(ANSWER_WITHIN, request.send())
        .await
        .map_err(|_| TestCaseError::fail("no answer: the request hung"))?
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
    let status = response.status();
    prop_assert!(
        status.is_success() || status.is_client_error(),
        "answered {status}"
    );
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    if content_type.starts_with("text/event-stream") && case.method == reqwest::Method::GET {
        // A standalone stream stays open: its answer is the status.
        return Ok(());
    }
    let body = tokio::time::timeout(ANSWER_WITHIN, response.bytes())
        .await
        .map_err(|_| TestCaseError::fail("the body hung"))?
        .map_err(|e| TestCaseError::fail(format!("the body broke off: {e}")))?;
    if content_type.starts_with("application/json") {
        let parsed = serde_json::from_slice::<Value>(&body);
        prop_assert!(
            parsed.is_ok(),
            "not JSON: {:?}",
            String::from_utf8_lossy(&body)
        );
    } else if content_type.starts_with("text/event-stream") {
        let text = String::from_utf8_lossy(&body);
        for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
            if !data.is_empty() {
                let parsed = serde_json::from_str::<Value>(data);
                prop_assert!(parsed.is_ok(), "SSE data not JSON: {data:?}");
            }
        }
    } else {
        // Transport-level refusals (405, 406, 413, 415) and 202 Accepted.
        prop_assert!(
            status.is_client_error() || body.is_empty(),
            "{status} with {content_type:?}: {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

// ----------------------------------------------------------- WebSocket

/// One `permessage-deflate` offer or another extension, and whether the
/// server can take it (RFC 7692 §7.1, restricted to what shared batches keep).
fn extension_offer() -> impl Strategy<Value = (String, bool)> {
    let param = proptest::sample::select(vec![
        ("client_max_window_bits", true),
        ("client_max_window_bits=12", true),
        ("client_max_window_bits = 9", true),
        ("client_no_context_takeover", true),
        ("server_no_context_takeover", false),
        ("server_max_window_bits=10", false),
        ("x_unknown", false),
    ]);
    (
        proptest::sample::select(vec![
            ("permessage-deflate", true),
            ("x-webkit-deflate-frame", false),
            ("permessage-foo", false),
        ]),
        proptest::collection::vec(param, 0..3),
    )
        .prop_map(|((name, known), params)| {
            let ok = known && params.iter().all(|(_, ok)| *ok);
            let text = std::iter::once(name)
                .chain(params.iter().map(|(p, _)| *p))
                .collect::<Vec<_>>()
                .join("; ");
            (text, ok)
        })
}

#[derive(Debug, Clone)]
struct WsCase {
    http10: bool,
    headers: Vec<(&'static str, Vec<u8>)>,
    /// The offers, one header line each, and whether any can be taken;
    /// `None` when the header is garbage.
    deflate: Option<bool>,
    frames: Vec<u8>,
}

fn ws_case() -> impl Strategy<Value = WsCase> {
    let good_key = any::<[u8; 16]>().prop_map(|k| b64(&k).into_bytes());
    let bearer = format!("bearer.{ADMIN_TOKEN}");
    let authorization = format!("Bearer {ADMIN_TOKEN}");
    let protocols = proptest::collection::vec(
        prop_oneof![
            Just("sessiongate.v1".to_string()),
            Just(bearer),
            Just("bearer.wrong".to_string()),
            "[a-z.]{0,10}",
        ],
        0..3,
    )
    .prop_map(|p| p.join(", ").into_bytes());
    let extensions = prop_oneof![
        4 => proptest::collection::vec(extension_offer(), 0..3).prop_map(Some),
        1 => Just(None),
    ];
    (
        proptest::bool::weighted(0.05),
        proptest::option::weighted(
            0.95,
            prop_oneof![
                4 => one_of(&["Upgrade", "upgrade", "keep-alive, Upgrade"]),
                1 => one_of(&["close", "keep-alive"]),
                1 => header_bytes(),
            ],
        ),
        proptest::option::weighted(
            0.95,
            prop_oneof![
                4 => one_of(&["websocket", "WebSocket"]),
                1 => header_bytes(),
            ],
        ),
        proptest::option::weighted(0.95, prop_oneof![4 => one_of(&["13"]), 1 => header_bytes()]),
        proptest::option::weighted(0.95, prop_oneof![4 => good_key, 1 => header_bytes()]),
        extensions,
        (
            proptest::option::of(protocols),
            proptest::option::of(prop_oneof![
                Just(authorization.into_bytes()),
                one_of(&["Bearer wrong"]),
                header_bytes(),
            ]),
            proptest::collection::vec(any::<u8>(), 0..64),
            header_bytes(),
        ),
    )
        .prop_map(
            |(
                http10,
                connection,
                upgrade,
                version,
                key,
                extensions,
                (protocols, auth, frames, garbage),
            )| {
                let mut headers: Vec<(&'static str, Vec<u8>)> = [
                    ("connection", connection),
                    ("upgrade", upgrade),
                    ("sec-websocket-version", version),
                    ("sec-websocket-key", key),
                    ("sec-websocket-protocol", protocols),
                    ("authorization", auth),
                ]
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect();
                let deflate = match extensions {
                    Some(offers) => {
                        for (offer, _) in &offers {
                            headers.push(("sec-websocket-extensions", offer.clone().into_bytes()));
                        }
                        Some(offers.iter().any(|(_, ok)| *ok))
                    }
                    None => {
                        headers.push(("sec-websocket-extensions", garbage));
                        None
                    }
                };
                WsCase {
                    http10,
                    headers,
                    deflate,
                    frames,
                }
            },
        )
}

async fn run_ws_case(server: &TestServer, case: WsCase) -> Result<(), TestCaseError> {
    let mut request = format!(
        "GET /api/mcp/ws/sessions HTTP/1.{}\r\nhost: {}\r\n",
        if case.http10 { 0 } else { 1 },
        server.server.addr
    )
    .into_bytes();
    for (name, value) in &case.headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let mut socket = TcpStream::connect(server.server.addr).await.unwrap();
    socket.write_all(&request).await.unwrap();
    let mut head = Vec::new();
    let read_head = async {
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(ANSWER_WITHIN, read_head)
        .await
        .map_err(|_| TestCaseError::fail("no answer to the handshake"))?;
    let text = String::from_utf8_lossy(&head).to_lowercase();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| TestCaseError::fail(format!("no status line: {text:?}")))?;
    prop_assert!(
        status == 101 || (400..500).contains(&status),
        "answered {status}"
    );
    let key = case
        .headers
        .iter()
        .find(|(k, _)| *k == "sec-websocket-key")
        .map(|(_, v)| v.clone());
    let nonce = key.as_ref().and_then(|k| {
        base64::engine::general_purpose::STANDARD
            .decode(k)
            .ok()
            .filter(|n| n.len() == 16)
    });
    prop_assert!(status != 101 || nonce.is_some(), "took the key {key:?}");
    if status == 101 {
        let key = key.unwrap();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
        prop_assert!(
            text.contains(&format!("sec-websocket-accept: {}", accept.to_lowercase())),
            "{text}"
        );
        if let Some(deflate) = case.deflate {
            prop_assert_eq!(
                text.contains("sec-websocket-extensions: permessage-deflate"),
                deflate,
                "{}",
                text
            );
        }
        // Whatever the client sends next, the server keeps serving.
        let _ = socket.write_all(&case.frames).await;
    }
    drop(socket);
    let health = tokio::time::timeout(
        ANSWER_WITHIN,
        server
            .http
            .get(format!("{}/api/health", server.base))
            .send(),
    )
    .await
    .map_err(|_| TestCaseError::fail("health hung after the case"))?
    .map_err(|e| TestCaseError::fail(format!("health failed after the case: {e}")))?;
    prop_assert_eq!(health.status(), 200);
    Ok(())
}

/// A request to the management API: a path, its query and a body.
fn api_request() -> impl Strategy<Value = (reqwest::Method, String, bool, Vec<u8>)> {
    let id = prop_oneof![
        "[0-9a-f]{32}",
        "[0-9a-zA-Z%._-]{0,40}",
        Just("health".to_string()),
    ];
    let path = prop_oneof![
        Just("/api/mcp/sessions".to_string()),
        Just("/api/mcp/sessions/disconnected".to_string()),
        Just("/api/mcp/sessions/timeline".to_string()),
        Just("/api/mcp/analytics".to_string()),
        Just("/api/mcp/usage/summary".to_string()),
        Just("/api/mcp/clients".to_string()),
        id.clone().prop_map(|id| format!("/api/mcp/sessions/{id}")),
        id.clone()
            .prop_map(|id| format!("/api/mcp/sessions/{id}/token")),
        id.prop_map(|id| format!("/api/mcp/sessions/{id}/reconnect")),
        "/api(/[a-z%]{0,8}){0,3}",
    ];
    let param = (
        proptest::sample::select(vec![
            "status",
            "client_type",
            "limit",
            "offset",
            "page",
            "per_page",
            "days",
            "hours",
            "compare",
            "x",
        ]),
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            "[0-9]{1,30}",
            Just("active".to_string()),
            Just("true".to_string()),
            "[a-zA-Z0-9%+&=._-]{0,12}",
        ],
    )
        .prop_map(|(k, v)| format!("{k}={v}"));
    let body = prop_oneof![
        any::<String>().prop_map(|t| json!({ "token": t }).to_string().into_bytes()),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..100),
    ];
    (
        prop_oneof![
            6 => Just(reqwest::Method::GET),
            2 => Just(reqwest::Method::POST),
            1 => Just(reqwest::Method::DELETE),
            1 => Just(reqwest::Method::PUT),
        ],
        path,
        proptest::collection::vec(param, 0..4),
        proptest::bool::weighted(0.9),
        body,
    )
        .prop_map(|(method, path, params, admin, body)| {
            let url = if params.is_empty() {
                path
            } else {
                format!("{path}?{}", params.join("&"))
            };
            (method, url, admin, body)
        })
}

/// A 2026-07-28 `tools/call` naming `name`, with `header` as `Mcp-Name`:
/// whether the server found the header mismatched.
async fn name_mismatch(
    server: &TestServer,
    name: &str,
    header: &str,
) -> Result<bool, TestCaseError> {
    let body = common::stateless("tools/call", json!({"name": name, "arguments": {}}));
    let response = server
        .http
        .post(server.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", header)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
    prop_assert!(!status.is_server_error(), "{status}: {answer}");
    Ok(answer["error"]["code"] == json!(-32020))
}

proptest! {
    #![proptest_config(server_config())]

    /// The management API answers any path, query and body with JSON: a
    /// result or a 4xx with its reason, never a 5xx.
    #[test]
    fn every_api_request_gets_a_json_answer((method, url, admin, body) in api_request()) {
        let (rt, server) = server();
        rt.block_on(async {
            let mut request = server
                .http
                .request(method, format!("{}{url}", server.base))
                .header("content-type", "application/json")
                .body(body);
            if admin {
                request = request.bearer_auth(ADMIN_TOKEN);
            }
            let response = tokio::time::timeout(ANSWER_WITHIN, request.send())
                .await
                .map_err(|_| TestCaseError::fail("no answer: the request hung"))?
                .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            prop_assert!(!status.is_server_error(), "{url}: {status} {text}");
            if url.starts_with("/metrics") {
                return Ok(());
            }
            prop_assert!(
                status == 405 || serde_json::from_str::<Value>(&text).is_ok(),
                "{url}: {status} not JSON: {text:?}"
            );
            Ok(())
        })?;
    }

    /// Any tool name, sent base64-encoded in `Mcp-Name` (or plain, where
    /// it is printable ASCII), matches the body; another name does not.
    #[test]
    fn mcp_name_headers_match_their_names(name in any::<String>(), other in any::<String>()) {
        let (rt, server) = server();
        rt.block_on(async {
            let encoded = format!("=?base64?{}?=", b64(name.as_bytes()));
            prop_assert!(!name_mismatch(server, &name, &encoded).await?, "{encoded}");
            let printable = |s: &str| s.bytes().all(|b| (0x21..0x7f).contains(&b));
            if printable(&name) && !name.starts_with("=?base64?") {
                prop_assert!(!name_mismatch(server, &name, &name).await?);
            }
            if other != name {
                let encoded = format!("=?base64?{}?=", b64(other.as_bytes()));
                prop_assert!(name_mismatch(server, &name, &encoded).await?);
            }
            Ok(())
        })?;
    }

    #[test]
    fn every_mcp_request_gets_a_well_formed_answer(case in mcp_case()) {
        let (rt, server) = server();
        rt.block_on(run_mcp_case(server, case))?;
    }

    #[test]
    fn every_live_stream_handshake_gets_a_well_formed_answer(case in ws_case()) {
        let (rt, server) = server();
        rt.block_on(run_ws_case(server, case))?;
    }
}

/// The longest durations a file can give still make a server that serves:
/// deadlines saturate instead of overflowing, and a keep-alive interval
/// that would overflow is refused (it took the response stream down).
#[tokio::test]
async fn the_longest_durations_serve() {
    let max = u64::MAX.to_string();
    let refused = toml::from_str::<Settings>(&format!("keepalive_interval = \"{max}\""))
        .unwrap()
        .resolve()
        .unwrap_err();
    assert!(
        refused.to_string().contains("keepalive_interval"),
        "{refused}"
    );
    let text = String::from("keepalive_interval = \"1day\"\n")
        + &[
            "idle_timeout",
            "activity_flush_interval",
            "request_log_flush_interval",
            "request_log_retention",
            "health_stale_after",
            "reconnect_token_ttl",
            "event_log_retention",
            "sse_after",
            "stream_idle_close",
            "request_state_ttl",
        ]
        .iter()
        .map(|k| format!("{k} = \"{max}\"\n"))
        .collect::<String>()
        + &format!("health_aging_after = \"{}\"\n", u64::MAX - 1)
        + "conformance = true\n";
    let settings: Settings = toml::from_str(&text).unwrap();
    let server = TestServer::start_with(settings).await;
    // A request state that never expires still opens.
    let tool = "test_input_required_result_elicitation";
    let mut call = common::stateless("tools/call", json!({"name": tool, "arguments": {}}));
    call["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
        json!({"elicitation": {}});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool),
    ];
    let asked: Value = server
        .post(call.clone(), &headers)
        .await
        .json()
        .await
        .unwrap();
    call["params"]["requestState"] = asked["result"]["requestState"].clone();
    call["params"]["inputResponses"] =
        json!({"user_name": {"action": "accept", "content": {"name": "Ada"}}});
    let done: Value = server.post(call, &headers).await.json().await.unwrap();
    assert_eq!(
        done["result"]["content"][0]["text"], "Hello, Ada!",
        "{done}"
    );
    let session = server.initialize("2025-11-25", "fuzz").await;
    let echoed = server
        .call_tool(&session, "echo", json!({"text": "hi"}))
        .await;
    assert!(echoed["result"].is_object(), "{echoed}");
    let token = server
        .call_tool(&session, "get_reconnect_token", json!({}))
        .await;
    assert!(token["result"].is_object(), "{token}");
    drop(server.open_stream(&session).await);
    server.clock.advance(Duration::from_secs(3600));
    for path in ["/api/mcp/sessions/health", "/api/mcp/sessions"] {
        let v = server.admin_get(path).await;
        assert!(v.is_object(), "{path}: {v}");
    }
    assert_eq!(server.delete(&session).await.status(), 200);
    server.stop().await;
}
