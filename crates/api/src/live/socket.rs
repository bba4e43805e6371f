//! The live stream's WebSocket handshake and its compression.
//!
//! axum's `WebSocketUpgrade` can neither negotiate an extension nor send a
//! frame it did not build, so the HTTP/1.1 handshake (RFC 6455 §4.2) is done
//! here and tokio-tungstenite takes over the upgraded connection. That makes
//! room for permessage-deflate (RFC 7692), which every browser offers.
//!
//! The fan-out compresses each batch of messages once, for every subscriber
//! that negotiated it: the batch is a run of the deflate stream that starts
//! afresh and refers back only to the batch's own earlier messages, so the
//! same bytes decompress correctly in any subscriber's context, whatever it
//! read before. Events of one batch repeat their keys and most of their
//! values, so a batch shrinks some ninefold, where compressing each message
//! alone only halves it. Messages meant for one subscriber (its snapshot,
//! `lagged`) go out uncompressed, which leaves the context untouched.

use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::error::ApiError;

/// A subscriber's upgraded connection.
pub(super) type Socket = WebSocketStream<TokioIo<Upgraded>>;

const DEFLATE: &str = "permessage-deflate";

/// A valid WebSocket upgrade request, not yet answered.
pub(super) struct Handshake {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    /// Whether the subscriber's messages may be compressed.
    deflate: bool,
}

impl Handshake {
    /// Checks an HTTP/1.1 upgrade request as RFC 6455 asks.
    pub fn read(request: &mut Request) -> Result<Self, ApiError> {
        let bad = |what: &str| {
            Err(ApiError::BadRequest(format!(
                "Not a WebSocket upgrade: {what}"
            )))
        };
        let headers = request.headers();
        if request.version() != Version::HTTP_11 {
            return bad("WebSocket needs HTTP/1.1");
        }
        if !has_token(headers, CONNECTION, "upgrade") {
            return bad("Connection: upgrade expected");
        }
        if !has_token(headers, UPGRADE, "websocket") {
            return bad("Upgrade: websocket expected");
        }
        if headers
            .get(SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return bad("Sec-WebSocket-Version: 13 expected");
        }
        let Some(key) = headers.get(SEC_WEBSOCKET_KEY).cloned() else {
            return bad("Sec-WebSocket-Key missing");
        };
        if !is_nonce(key.as_bytes()) {
            return bad("Sec-WebSocket-Key must be 16 bytes in base64");
        }
        let deflate = offers_deflate(headers);
        let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
            return bad("this connection cannot be upgraded");
        };
        Ok(Handshake {
            key,
            on_upgrade,
            deflate,
        })
    }

    /// Answers `101 Switching Protocols`, selecting `protocol` if given, and
    /// runs `serve` on the connection once the client has it.
    pub fn accept<F, Fut>(
        self,
        protocol: Option<&'static str>,
        config: WebSocketConfig,
        serve: F,
    ) -> Response
    where
        F: FnOnce(Socket, bool) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Handshake {
            key,
            on_upgrade,
            deflate,
        } = self;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let socket = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await;
                    serve(socket, deflate).await;
                }
                Err(e) => tracing::debug!(error = %e, "live stream upgrade failed"),
            }
        });
        let mut response = (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (CONNECTION, HeaderValue::from_static("upgrade")),
                (UPGRADE, HeaderValue::from_static("websocket")),
            ],
        )
            .into_response();
        let headers = response.headers_mut();
        if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(protocol) = protocol {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
        }
        if deflate {
            // Context takeover both ways and the full window: the shared
            // batches need the client to keep its context across messages.
            headers.insert(SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_static(DEFLATE));
        }
        response.map(|_| Body::empty())
    }
}

/// The items of a comma-separated header, over all its lines, trimmed.
pub(super) fn header_list(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// RFC 6455 §4.2.1: the key is a base64-encoded 16-byte nonce.
fn is_nonce(key: &[u8]) -> bool {
    use base64::Engine;
    let mut nonce = [0u8; 18];
    key.len() == 24
        && base64::engine::general_purpose::STANDARD.decode_slice(key, &mut nonce) == Ok(16)
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    header_list(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Whether the client offered permessage-deflate on terms the shared batches
/// can keep: the server's context carried from message to message, with its
/// full 32 KiB window. Browsers offer exactly that (at most restricting their
/// own side, which the server need not answer since it receives only control
/// frames).
fn offers_deflate(headers: &HeaderMap) -> bool {
    header_list(headers, SEC_WEBSOCKET_EXTENSIONS).any(|offer| {
        let mut params = offer.split(';').map(str::trim);
        params.next() == Some(DEFLATE)
            && params.all(|p| {
                let name = p.split_once('=').map_or(p, |(name, _)| name.trim());
                matches!(
                    name,
                    "client_no_context_takeover" | "client_max_window_bits"
                )
            })
    })
}

/// A batch's messages compressed as one fresh run of a permessage-deflate
/// stream, one payload per message; `None` if the compressor failed (the
/// batch then goes out plain, which RFC 7692 allows message by message).
pub(super) fn deflate(texts: &[Utf8Bytes]) -> Option<Vec<Bytes>> {
    let mut z = Compress::new(Compression::fast(), false);
    texts
        .iter()
        .map(|text| {
            let mut input = text.as_bytes();
            let mut out = Vec::with_capacity(input.len() / 2 + 64);
            loop {
                let read = z.total_in();
                z.compress_vec(input, &mut out, FlushCompress::Sync).ok()?;
                input = &input[(z.total_in() - read) as usize..];
                // Room left over means all was read and flushed.
                if input.is_empty() && out.len() < out.capacity() {
                    break;
                }
                out.reserve(out.capacity());
            }
            // RFC 7692 §7.2.1: the flush's empty block is left off.
            out.strip_suffix(&[0, 0, 0xff, 0xff])?;
            out.truncate(out.len() - 4);
            Some(Bytes::from(out))
        })
        .collect()
}

/// A compressed text message: its payload as [`deflate`] made it.
pub(super) fn compressed(payload: Bytes) -> Message {
    let mut frame = Frame::message(payload, OpCode::Data(Data::Text), true);
    frame.header_mut().rsv1 = true;
    Message::Frame(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(SEC_WEBSOCKET_EXTENSIONS, value.parse().unwrap());
        offers_deflate(&headers)
    }

    #[test]
    fn takes_the_offers_browsers_make_and_declines_what_batches_cannot_keep() {
        assert!(offer("permessage-deflate; client_max_window_bits"));
        assert!(offer("permessage-deflate"));
        assert!(offer(
            "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=12"
        ));
        assert!(offer("permessage-deflate; client_no_context_takeover"));
        assert!(!offer("permessage-deflate; server_no_context_takeover"));
        assert!(!offer("permessage-deflate; server_max_window_bits=10"));
        assert!(!offer("permessage-deflate; unknown_param"));
        assert!(!offer("x-webkit-deflate-frame"));
        assert!(!offers_deflate(&HeaderMap::new()));
    }

    fn handshake_error(key: &str) -> String {
        let mut request = Request::builder()
            .header(CONNECTION, "Upgrade")
            .header(UPGRADE, "websocket")
            .header(SEC_WEBSOCKET_VERSION, "13")
            .header(SEC_WEBSOCKET_KEY, key)
            .body(Body::empty())
            .unwrap();
        match Handshake::read(&mut request) {
            Ok(_) => unreachable!("a request without a connection cannot be upgraded"),
            Err(e) => format!("{e:?}"),
        }
    }

    /// Found by the property tests (crates/cli/tests/props.rs).
    #[test]
    fn the_key_is_a_16_byte_nonce() {
        for bad in [
            "",
            "x",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ==x",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                handshake_error(bad).contains("Sec-WebSocket-Key"),
                "{bad:?} taken"
            );
        }
        assert!(handshake_error("dGhlIHNhbXBsZSBub25jZQ==").contains("cannot be upgraded"));
    }

    proptest::proptest! {
        #[test]
        fn offers_never_panic_and_never_take_server_parameters(value in "[ -~]{0,80}") {
            let mut headers = HeaderMap::new();
            headers.insert(SEC_WEBSOCKET_EXTENSIONS, value.parse().unwrap());
            if offers_deflate(&headers) {
                proptest::prop_assert!(value.contains(DEFLATE));
                proptest::prop_assert!(!value.contains("server_"));
            }
        }

        /// Any batch of texts comes back whole to a client inflating
        /// everything it was sent in one context.
        #[test]
        fn any_batches_decompress(batches in proptest::collection::vec(
            proptest::collection::vec(".{0,300}", 0..8),
            1..4,
        )) {
            let mut client = flate2::Decompress::new(false);
            for texts in batches {
                let texts: Vec<Utf8Bytes> = texts.into_iter().map(Utf8Bytes::from).collect();
                let payloads = deflate(&texts).unwrap();
                let back = inflate_all(&payloads, &mut client);
                let want: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
                proptest::prop_assert_eq!(back, want);
            }
        }
    }

    /// What a client does (RFC 7692 §7.2.2): one inflater for the whole
    /// connection, each payload followed by the flush marker.
    fn inflate_all(payloads: &[Bytes], inflater: &mut flate2::Decompress) -> Vec<String> {
        payloads
            .iter()
            .map(|p| {
                let mut input = p.to_vec();
                input.extend_from_slice(&[0, 0, 0xff, 0xff]);
                let mut out = Vec::with_capacity(64 * 1024);
                inflater
                    .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
                    .unwrap();
                String::from_utf8(out).unwrap()
            })
            .collect()
    }

    #[test]
    fn batches_decompress_in_one_context_whatever_came_before() {
        let batch = |n: usize| -> Vec<Utf8Bytes> {
            (0..n)
                .map(|i| {
                    Utf8Bytes::from(format!(
                        r#"{{"type":"session_created","session":{{"session_id":"{i:032x}","client_name":"cursor","status":"active","request_count":{i}}}}}"#
                    ))
                })
                .collect()
        };
        let (first, second) = (batch(20), batch(3));
        let (a, b) = (deflate(&first).unwrap(), deflate(&second).unwrap());
        assert!(a.iter().map(Bytes::len).sum::<usize>() * 3 < first.iter().map(|t| t.len()).sum());
        // One subscriber reads both batches, another joins for the second.
        let mut both = flate2::Decompress::new(false);
        let mut late = flate2::Decompress::new(false);
        let texts = |b: &[Utf8Bytes]| b.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert_eq!(inflate_all(&a, &mut both), texts(&first));
        assert_eq!(inflate_all(&b, &mut both), texts(&second));
        assert_eq!(inflate_all(&b, &mut late), texts(&second));
    }
}
