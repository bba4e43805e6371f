//! The configuration as a user writes it: layering, defaults and refusals.

use std::time::Duration;

use super::*;
use crate::connections::ConnectionLimits;

#[test]
fn durations_accept_seconds_and_units() {
    assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
    assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
    assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
    assert!(parse_duration("soon").is_err());
}

#[test]
fn flags_override_file_and_defaults_fill_the_rest() {
    let file: Settings = toml::from_str(
        r#"
        idle_timeout = "10m"
        listen = "127.0.0.1:9000"
        request_log_retention = 86400
        allowed_origins = ["https://a.example"]
        "#,
    )
    .unwrap();
    let flags = Settings {
        idle_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let c = flags.or(file).resolve().unwrap();
    assert_eq!(c.lifecycle.idle_timeout, Duration::from_secs(5));
    assert_eq!(c.listen.host_port(), ("127.0.0.1", 9000));
    assert_eq!(
        c.lifecycle.request_log.retention,
        Duration::from_secs(86400)
    );
    assert_eq!(c.lifecycle.request_log.batch_rows, 1000);
    assert_eq!(c.transport.origins.allowed_origins, ["https://a.example"]);
}

#[test]
fn bad_values_are_refused_with_a_reason() {
    let err = toml::from_str::<Settings>("idle_timout = 5").unwrap_err();
    assert!(err.to_string().contains("idle_timout"), "{err}");
    let zero = Settings {
        idle_timeout: Some(Duration::ZERO),
        ..Default::default()
    };
    assert!(zero
        .resolve()
        .unwrap_err()
        .to_string()
        .contains("idle_timeout"));
    let short = Settings {
        admin_token: Some("abc".into()),
        ..Default::default()
    };
    assert!(short.resolve().is_err());
    for (bad, name) in [
        ("initialize_rate = 0.0", "initialize_rate"),
        ("initialize_burst = 0", "initialize_burst"),
        ("max_stateless_clients = 0", "max_stateless_clients"),
        ("max_listen_streams = 0", "max_listen_streams"),
        (
            "max_client_metadata_bytes = 10",
            "max_client_metadata_bytes",
        ),
        ("max_connections = 0", "max_connections"),
        ("header_read_timeout = 0", "header_read_timeout"),
    ] {
        let settings: Settings = toml::from_str(bad).unwrap();
        let err = settings.resolve().unwrap_err().to_string();
        assert!(err.contains(name), "{bad}: {err}");
    }
}

#[test]
fn limits_come_from_the_file() {
    let file: Settings = toml::from_str(
        r#"
        max_client_metadata_bytes = 4096
        max_stateless_clients = 50
        initialize_rate = 2.5
        initialize_burst = 10
        max_listen_streams = 4
        body_read_timeout = "5s"
        header_read_timeout = "2s"
        connection_idle_timeout = "30s"
        max_connections = 500
        connection_reserve = 8
        "#,
    )
    .unwrap();
    let c = file.resolve().unwrap();
    assert_eq!(c.transport.max_client_metadata_bytes, 4096);
    assert_eq!(c.lifecycle.max_stateless_clients, 50);
    assert_eq!(c.transport.initialize_per_second, 2.5);
    assert_eq!(c.transport.initialize_burst, 10);
    assert_eq!(c.transport.max_listen_streams, 4);
    assert_eq!(c.transport.body_read_timeout, Duration::from_secs(5));
    assert_eq!(
        c.connections,
        ConnectionLimits {
            max_connections: Some(500),
            reserve: 8,
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
        }
    );
}

#[test]
fn upstreams_come_from_tables_and_flags() {
    let file: Settings = toml::from_str(
        r#"
        tool_separator = "."
        [upstreams.files]
        command = "npx"
        args = ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
        mode = "shared"
        "#,
    )
    .unwrap();
    let flags = Settings {
        stdio: vec!["npx -y @modelcontextprotocol/server-everything".into()],
        upstream: vec!["web=http://127.0.0.1:9/mcp".into()],
        ..Default::default()
    };
    let c = flags.or(file).resolve().unwrap();
    let names: Vec<&str> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["files", "everything", "web"]);
    assert_eq!(c.tool_separator, ".");
    assert!(c.builtin_tools);

    let err =
        toml::from_str::<Settings>("[upstreams.x]\nurl = 'http://h'\ncommand = 'y'").unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");
    let twice = Settings {
        stdio: vec!["a=x".into(), "a=y".into()],
        ..Default::default()
    };
    let err = twice.resolve().unwrap_err();
    assert!(
        err.to_string().contains("two upstreams are named a"),
        "{err}"
    );
}
