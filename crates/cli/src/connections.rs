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
//! request path only counts requests in flight with atomics.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::routing::future::RouteFuture;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use slab::Slab;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_util::task::TaskTracker;
use tower::Service;

/// Descriptors kept for everything but client connections: the store's
/// files and pool, the log, the data directory's files.
const FD_RESERVE: u64 = 256;

/// Connection limits and timeouts.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimits {
    /// Open connections at most; `None` derives it from the open-file limit.
    pub max_connections: Option<usize>,
    /// Connections MCP requests cannot take, kept for the management API.
    pub reserve: usize,
    /// Time a started request has to send all its headers.
    pub header_read_timeout: Duration,
    /// Time a connection may stay open without a request.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: None,
            reserve: 64,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Raises the open-file soft limit to the hard limit; returns the soft limit
/// now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            let e = io::Error::last_os_error();
            tracing::warn!(soft = before, hard = limit.rlim_max, error = %e, "cannot raise the open-file limit");
            return Ok(before);
        }
        tracing::info!(
            from = before,
            to = limit.rlim_cur,
            "raised the open-file soft limit to the hard limit"
        );
    }
    Ok(limit.rlim_cur)
}

/// `max_connections` as configured, or as many as the open-file limit allows;
/// never more than it allows.
pub fn effective_max_connections(configured: Option<usize>, fd_limit: u64) -> usize {
    let allowed = usize::try_from(fd_limit.saturating_sub(FD_RESERVE).max(fd_limit / 2))
        .unwrap_or(usize::MAX)
        .max(1);
    match configured {
        Some(n) if n > allowed => {
            tracing::warn!(
                configured = n,
                allowed,
                fd_limit,
                "max_connections is above what the open-file limit allows; using {allowed}"
            );
            allowed
        }
        Some(n) => n,
        None => allowed,
    }
}

/// One connection's state, shared by its watchdog, its I/O and its requests.
struct Conn {
    /// Requests whose response is not yet fully sent.
    in_flight: AtomicUsize,
    /// Milliseconds (since [`Shared::epoch`]) of the last request's start or end.
    last_active: AtomicU64,
    /// When the first bytes of the next request's head arrived; 0 = none yet.
    head_started: AtomicU64,
    evicting: AtomicBool,
    evict: Notify,
    /// Held here, so a request takes one reference count, its connection's.
    shared: Arc<Shared>,
}

struct Shared {
    epoch: Instant,
    limits: ConnectionLimits,
    max_connections: usize,
    mcp_cap: usize,
    mcp_in_flight: AtomicUsize,
    open: Mutex<Slab<Arc<Conn>>>,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        // Never 0, which means "none" in `head_started`.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Makes room for a new connection: `false` when every open one is busy.
    fn admit(&self) -> bool {
        let open = self.open.lock().expect("connections poisoned");
        if open.len() < self.max_connections {
            return true;
        }
        let victim = open
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c.in_flight.load(Ordering::Relaxed) == 0)
            .filter(|c| !c.evicting.load(Ordering::Relaxed))
            .min_by_key(|c| c.last_active.load(Ordering::Relaxed));
        match victim {
            Some(c) => {
                c.evicting.store(true, Ordering::Relaxed);
                c.evict.notify_one();
                metrics::counter!("sessiongate_connections_closed_total", "reason" => "evicted")
                    .increment(1);
                true
            }
            None => false,
        }
    }
}

/// Why a watchdog closes its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep { until_ms: u64 },
    Close(&'static str),
}

impl Conn {
    fn check(&self, now: u64, limits: &ConnectionLimits) -> Verdict {
        let header = limits.header_read_timeout.as_millis() as u64;
        let idle = limits.idle_timeout.as_millis() as u64;
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Verdict::Keep {
                until_ms: now + header.min(idle),
            };
        }
        let head = self.head_started.load(Ordering::Relaxed);
        if head != 0 {
            return match head + header {
                due if due <= now => Verdict::Close("header_timeout"),
                due => Verdict::Keep { until_ms: due },
            };
        }
        match self.last_active.load(Ordering::Relaxed) + idle {
            due if due <= now => Verdict::Close("idle"),
            // A request may start meanwhile: look again within the header timeout.
            due => Verdict::Keep {
                until_ms: due.min(now + header),
            },
        }
    }
}

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
            shared: Arc::new(Shared {
                epoch: Instant::now(),
                mcp_cap: max_connections - reserve,
                max_connections,
                limits,
                mcp_in_flight: AtomicUsize::new(0),
                open: Mutex::new(Slab::new()),
            }),
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
    let conn = Arc::new(Conn {
        in_flight: AtomicUsize::new(0),
        last_active: AtomicU64::new(shared.now_ms()),
        head_started: AtomicU64::new(0),
        evicting: AtomicBool::new(false),
        evict: Notify::new(),
        shared: shared.clone(),
    });
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

/// The connection's socket; notes when a request's head starts arriving.
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && this.conn.in_flight.load(Ordering::Relaxed) == 0
            && this.conn.head_started.load(Ordering::Relaxed) == 0
        {
            this.conn
                .head_started
                .store(this.conn.shared.now_ms(), Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serves one connection's requests with the app, counting them in flight.
#[derive(Clone)]
struct ConnService {
    app: Router,
    conn: Arc<Conn>,
    remote: ConnectInfo<SocketAddr>,
}

/// Held from a request's start until its response is fully sent.
struct InFlight {
    conn: Arc<Conn>,
    mcp: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let shared = &self.conn.shared;
        self.conn
            .last_active
            .store(shared.now_ms(), Ordering::Relaxed);
        self.conn.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.mcp {
            shared.mcp_in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Responding;

    fn call(&self, mut req: Request<Incoming>) -> Responding {
        self.conn.in_flight.fetch_add(1, Ordering::Relaxed);
        self.conn.head_started.store(0, Ordering::Relaxed);
        let shared = &self.conn.shared;
        self.conn
            .last_active
            .store(shared.now_ms(), Ordering::Relaxed);
        let mut guard = InFlight {
            conn: self.conn.clone(),
            mcp: false,
        };
        if req.uri().path() == "/mcp" {
            let busy = shared.mcp_in_flight.fetch_add(1, Ordering::Relaxed);
            guard.mcp = true;
            if busy >= shared.mcp_cap {
                return Responding {
                    routed: None,
                    refused: Some(mcp_busy()),
                    guard: Some(guard),
                };
            }
        }
        req.extensions_mut().insert(self.remote);
        Responding {
            routed: Some(self.app.clone().call(req)),
            refused: None,
            guard: Some(guard),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's response, carrying its [`InFlight`] on into the body.
    struct Responding {
        #[pin]
        routed: Option<RouteFuture<Infallible>>,
        refused: Option<Response<axum::body::Body>>,
        guard: Option<InFlight>,
    }
}

impl Future for Responding {
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match (this.routed.as_pin_mut(), this.refused.take()) {
            (_, Some(refused)) => refused,
            (Some(routed), None) => match routed.poll(cx) {
                Poll::Ready(Ok(r)) => r,
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => return Poll::Pending,
            },
            (None, None) => unreachable!("polled after completion"),
        };
        let guard = this.guard.take().expect("polled after completion");
        Poll::Ready(Ok(response.map(|body| TrackedBody {
            inner: body,
            _guard: guard,
        })))
    }
}

fn mcp_busy() -> Response<axum::body::Body> {
    metrics::counter!("sessiongate_limit_refusals_total", "limit" => "mcp_connections")
        .increment(1);
    let mut response = Response::new(axum::body::Body::from(
        "too many MCP requests in flight; retry shortly",
    ));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A response body that ends the request's [`InFlight`] when dropped.
struct TrackedBody {
    inner: axum::body::Body,
    _guard: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(last_active: u64, head_started: u64, in_flight: usize) -> Conn {
        Conn {
            in_flight: AtomicUsize::new(in_flight),
            last_active: AtomicU64::new(last_active),
            head_started: AtomicU64::new(head_started),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
            shared: Arc::new(Shared {
                epoch: Instant::now(),
                limits: ConnectionLimits::default(),
                max_connections: 1,
                mcp_cap: 1,
                mcp_in_flight: AtomicUsize::new(0),
                open: Mutex::new(Slab::new()),
            }),
        }
    }

    #[test]
    fn a_watchdog_closes_half_sent_heads_and_idle_connections_only() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            ..ConnectionLimits::default()
        };
        // Idle since 1s: looked at again within the header timeout.
        assert_eq!(
            conn(1_000, 0, 0).check(2_000, &limits),
            Verdict::Keep { until_ms: 4_000 }
        );
        assert_eq!(
            conn(1_000, 0, 0).check(11_000, &limits),
            Verdict::Close("idle")
        );
        assert_eq!(
            conn(1_000, 5_000, 0).check(6_000, &limits),
            Verdict::Keep { until_ms: 7_000 }
        );
        assert_eq!(
            conn(1_000, 5_000, 0).check(7_000, &limits),
            Verdict::Close("header_timeout")
        );
        // A request in flight (a long call, an open stream) is never cut.
        assert!(matches!(
            conn(1_000, 0, 1).check(100_000, &limits),
            Verdict::Keep { .. }
        ));
    }

    #[test]
    fn max_connections_stays_below_the_open_file_limit() {
        assert_eq!(effective_max_connections(None, 20_000), 19_744);
        assert_eq!(effective_max_connections(Some(100), 20_000), 100);
        assert_eq!(effective_max_connections(Some(50_000), 1024), 768);
        assert_eq!(effective_max_connections(None, 300), 150);
    }
}
