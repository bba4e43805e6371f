//! An axum router served on an ephemeral port of 127.0.0.1, with the
//! client's address available to handlers as `ConnectInfo<SocketAddr>`,
//! as the gateway serves it.

use std::net::SocketAddr;

use axum::Router;

/// Serves `router` on `127.0.0.1:0` until the test's runtime ends; returns
/// the address it listens on.
pub async fn spawn(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding an ephemeral port");
    let addr = listener.local_addr().expect("the listener's address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serving the test router");
    });
    addr
}
