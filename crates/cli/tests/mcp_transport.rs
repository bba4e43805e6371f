//! The MCP endpoint as the assembled server configures it from its
//! settings. The endpoint's own HTTP behaviour is tested in the mcp crate
//! (crates/mcp/tests/transport.rs).

mod common;

use common::TestServer;
use serde_json::json;

#[tokio::test]
async fn allowed_origins_come_from_the_settings() {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}});
    let allowed = TestServer::start_with(sessiongate::config::Settings {
        allowed_origins: vec!["https://app.example.com".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(
        allowed
            .post(init, &[("origin", "https://app.example.com")])
            .await
            .status(),
        200
    );
    allowed.stop().await;
}
