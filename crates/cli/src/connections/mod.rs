//! The HTTP listener: accepts connections, serves each with hyper, and keeps
//! what connections can take bounded.
//!
//! - At startup the open-file soft limit is raised to the hard limit, and
//!   open connections are capped below it (`max_connections`), so the
//!   server never runs out of descriptors and stops accepting.
//! - At the cap, a new connection evicts the least recently active idle one
//!   (no request in flight: idle keep-alive or still sending its headers);
//!   with none idle it is closed at once.
//! - MCP requests in flight are capped at `max_connections -
//!   connection_reserve`, so at least the reserve is always idle (and so
//!   evictable) or serving the management API: `/api/...` and `/metrics`
//!   answer however busy `/mcp` is. An MCP request over its cap gets 503.
//! - A connection that has started a request but not sent all its headers
//!   within `header_read_timeout` is closed, as is one with no request for
//!   `idle_timeout`. Slow bodies are the MCP transport's `body_read_timeout`.
//!
//! Each connection has a watchdog that wakes at its next deadline; the
//! request path only counts requests in flight with atomics. This module
//! accepts and runs connections; `limits` holds the caps and timeouts,
//! `state` what a connection's watchdog, socket and requests share,
//! `socket` and `service` the I/O and request sides.

mod limits;
mod service;
mod socket;
mod state;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

pub use limits::{effective_max_connections, raise_fd_limit, ConnectionLimits};
use service::ConnService;
use socket::Tracked;
use state::{Conn, Shared, Verdict};

/// A served listener; [`Listener::serve`] runs until `stop` turns true.
pub struct Listener {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Listener {
    pub fn new(listener: TcpListener, limits: ConnectionLimits, fd_limit: u64) -> Self {
        let max_connections = effective_max_connections(limits.max_connections, fd_limit);
        let reserve = limits.reserve.min(max_connections.saturating_sub(1));
        tracing::info!(
            max_connections,
            reserved_for_management = reserve,
            "connection limits"
        );
        Listener {
            listener,
            shared: Arc::new(Shared::new(
                limits,
                max_connections,
                max_connections - reserve,
            )),
        }
    }

    /// Accepts and serves until `stop` turns true, then lets every
    /// connection finish its requests and waits for them.
    pub async fn serve(self, app: Router, mut stop: watch::Receiver<bool>) {
        let tracker = TaskTracker::new();
        loop {
            let (tcp, remote) = tokio::select! {
                _ = stopped(&mut stop) => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors or the like: do not spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            if !self.shared.admit() {
                metrics::counter!("sessiongate_connections_refused_total").increment(1);
                drop(tcp);
                continue;
            }
            // Without TCP_NODELAY small responses stall on Nagle + delayed ACK.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "cannot set TCP_NODELAY");
            }
            tracker.spawn(serve_connection(
                self.shared.clone(),
                app.clone(),
                tcp,
                remote,
                stop.clone(),
            ));
        }
        tracker.close();
        tracker.wait().await;
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn serve_connection(
    shared: Arc<Shared>,
    app: Router,
    tcp: TcpStream,
    remote: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let conn = Arc::new(Conn::new(shared.clone()));
    let key = shared
        .open
        .lock()
        .expect("connections poisoned")
        .insert(conn.clone());
    let open = metrics::gauge!("sessiongate_connections_open");
    open.increment(1.0);

    let io = TokioIo::new(Tracked {
        inner: tcp,
        conn: conn.clone(),
    });
    let service = ConnService {
        app,
        conn: conn.clone(),
        remote: ConnectInfo(remote),
    };
    let mut http = pin!(hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades());
    let mut stopping = false;
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            result = http.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %remote, "connection ended with an error");
                }
                break;
            }
            _ = conn.evict.notified() => {
                // A request may have started since it was picked: let it finish.
                if conn.in_flight.load(Ordering::Relaxed) == 0 {
                    break;
                }
                conn.evicting.store(false, Ordering::Relaxed);
            }
            _ = stopped(&mut stop), if !stopping => {
                stopping = true;
                http.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(next) => {
                match conn.check(shared.now_ms(), &shared.limits) {
                    Verdict::Keep { until_ms } => {
                        next = tokio::time::Instant::from_std(
                            shared.epoch + Duration::from_millis(until_ms),
                        );
                    }
                    Verdict::Close(reason) => {
                        metrics::counter!("sessiongate_connections_closed_total", "reason" => reason)
                            .increment(1);
                        break;
                    }
                }
            }
        }
    }
    shared
        .open
        .lock()
        .expect("connections poisoned")
        .remove(key);
    open.decrement(1.0);
}
