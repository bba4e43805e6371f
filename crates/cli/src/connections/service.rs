//! Serving one connection's requests with the app: each request counts as
//! in flight until its response body is fully sent, and an MCP request over
//! the MCP cap is refused with 503 before it reaches the app.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::routing::future::RouteFuture;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use tower::Service;

use super::state::Conn;

#[derive(Clone)]
pub(super) struct ConnService {
    pub(super) app: Router,
    pub(super) conn: Arc<Conn>,
    pub(super) remote: ConnectInfo<SocketAddr>,
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
    pub(super) struct Responding {
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
pub(super) struct TrackedBody {
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
