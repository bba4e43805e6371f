//! `requestState`: what a 2026-07-28 client carries from one round of a
//! multi-round-trip request to the next. The server keeps nothing between
//! rounds, so the state is self-contained and verified on its return:
//!
//! ```text
//! sg1.<base64url(payload JSON)>.<base64url(HMAC-SHA256(key, "sg1.<payload>"))>
//! ```
//!
//! The payload holds the answers of earlier rounds, the number of rounds
//! behind it, an expiry by the lifecycle's clock, and digests that bind it
//! to the client it was issued to (principal and client key) and to the
//! request it was issued on (method and the salient params: tool or prompt
//! name and arguments, resource uri — never `_meta`, `inputResponses` or
//! `requestState`). A retry after a restart completes as long as the key
//! is the same, which the data directory keeps. Integrity only: the
//! payload is readable by the client, whose own answers it holds.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use rmcp::model::ErrorData;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use sessiongate_core::Timestamp;
use sha2::{Digest, Sha256};

use crate::request::Request;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "sg1.";

/// Bytes of the binding digests kept in a state: 128 bits, so no two
/// clients or requests share one by chance, and forging one needs the key.
const DIGEST_BYTES: usize = 16;

/// How long a `requestState` is honoured unless configured otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10 * 60);

/// The secret that signs request states. Its bytes never appear in logs.
#[derive(Clone)]
pub struct StateKey(Arc<[u8]>);

impl StateKey {
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> StateKey {
        StateKey(bytes.into().into())
    }

    /// A fresh 256-bit key from the OS CSPRNG, for a server whose states
    /// need not outlive it.
    pub fn generate() -> StateKey {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random number generator works");
        StateKey::from_bytes(bytes.to_vec())
    }

    /// A tag binding `parts` under this key (128 bits of HMAC-SHA256,
    /// base64url): what a gateway appends to an id it hands one client so
    /// another cannot use it.
    pub fn tag(&self, parts: &[&str]) -> String {
        URL_SAFE_NO_PAD.encode(&self.mac(parts).finalize().into_bytes()[..DIGEST_BYTES])
    }

    /// Whether `tag` is [`tag`](Self::tag) of `parts`, compared in
    /// constant time.
    pub fn verify_tag(&self, parts: &[&str], tag: &str) -> bool {
        URL_SAFE_NO_PAD.decode(tag).is_ok_and(|t| {
            t.len() == DIGEST_BYTES && self.mac(parts).verify_truncated_left(&t).is_ok()
        })
    }

    fn mac(&self, parts: &[&str]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for part in parts {
            // Length-prefixed, so no two lists of parts read alike.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }
}

impl fmt::Debug for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateKey(..)")
    }
}

/// Why a presented `requestState` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error(
        "requestState failed its integrity check: it was not issued by this server or was altered"
    )]
    Tampered,
    #[error("requestState has expired; send the request again without it")]
    Expired,
    #[error("requestState was issued to another client")]
    OtherClient,
    #[error(
        "requestState was issued on a different request (its method, name, arguments or uri differ)"
    )]
    OtherRequest,
}

impl StateError {
    /// The reason as the error's `data` names it.
    fn reason(self) -> &'static str {
        match self {
            StateError::Tampered => "tampered",
            StateError::Expired => "expired",
            StateError::OtherClient => "other_client",
            StateError::OtherRequest => "other_request",
        }
    }
}

impl From<StateError> for ErrorData {
    fn from(e: StateError) -> ErrorData {
        ErrorData::invalid_params(e.to_string(), Some(json!({ "reason": e.reason() })))
    }
}

/// Digests binding a state to its client and its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    pub client: String,
    pub request: String,
}

impl Binding {
    /// The client: its principal, if it has one, and its client key.
    pub fn client(principal: Option<&str>, client_key: &str) -> String {
        let mut h = Sha256::new();
        match principal {
            Some(p) => {
                h.update(b"principal\0");
                h.update(p.as_bytes());
            }
            None => h.update(b"anonymous"),
        }
        h.update(b"\0");
        h.update(client_key.as_bytes());
        digest_text(h)
    }

    /// The request: its method and salient params, JSON canonicalized
    /// (object keys sorted), so a client that serializes its arguments in
    /// another order still matches.
    pub fn request(request: &Request) -> String {
        let p = &request.params;
        Binding::salient(&request.method, [&p.name, &p.arguments, &p.uri])
    }

    /// [`request`](Self::request) of a request's method and `params` as
    /// sent, reading only the salient members.
    pub fn request_sent(method: &str, params: Option<&RawValue>) -> String {
        #[derive(Deserialize, Default)]
        struct Salient {
            name: Option<Value>,
            arguments: Option<Value>,
            uri: Option<Value>,
        }
        let p: Salient = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        Binding::salient(method, [&p.name, &p.arguments, &p.uri])
    }

    /// `[name, arguments, uri]`, each tagged, so one cannot pass for another.
    fn salient(method: &str, [name, arguments, uri]: [&Option<Value>; 3]) -> String {
        let mut h = Sha256::new();
        h.update(method.as_bytes());
        for (tag, value) in [
            (b"\0name\0", name),
            (b"\0args\0", arguments),
            (b"\0uri\0\0", uri),
        ] {
            h.update(tag);
            if let Some(value) = value {
                canonical(value, &mut h);
            }
        }
        digest_text(h)
    }
}

fn digest_text(h: Sha256) -> String {
    URL_SAFE_NO_PAD.encode(&h.finalize()[..DIGEST_BYTES])
}

/// Feeds `value` to `h` as JSON with every object's keys in order.
fn canonical(value: &Value, h: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            h.update(b"{");
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    h.update(b",");
                }
                canonical_scalar(k, h);
                h.update(b":");
                canonical(v, h);
            }
            h.update(b"}");
        }
        Value::Array(items) => {
            h.update(b"[");
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    h.update(b",");
                }
                canonical(v, h);
            }
            h.update(b"]");
        }
        scalar => canonical_scalar(scalar, h),
    }
}

fn canonical_scalar(value: &impl Serialize, h: &mut Sha256) {
    struct Hashing<'a>(&'a mut Sha256);
    impl std::io::Write for Hashing<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Hashing(h), value).expect("a scalar serializes");
}

/// What a state carries from round to round.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Carried {
    /// Rounds of input behind the request.
    pub round: u32,
    /// Answers the handler used in earlier rounds, by key.
    pub answers: Map<String, Value>,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    /// Expiry, in milliseconds since the epoch by the lifecycle's clock.
    exp: i64,
    /// [`Binding::client`].
    c: String,
    /// [`Binding::request`].
    r: String,
    /// [`Carried::round`].
    n: u32,
    /// [`Carried::answers`].
    a: Map<String, Value>,
}

/// Seals and opens request states with one key and one lifetime.
#[derive(Clone)]
pub struct RequestStates {
    mac: HmacSha256,
    ttl: Duration,
}

impl fmt::Debug for RequestStates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestStates")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RequestStates {
    pub fn new(key: &StateKey, ttl: Duration) -> RequestStates {
        RequestStates {
            mac: HmacSha256::new_from_slice(&key.0).expect("HMAC takes a key of any length"),
            ttl,
        }
    }

    fn tag(&self, signed: &str) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac
    }

    /// A state for `carried`, bound to `binding`, issued `now`.
    pub(crate) fn seal(&self, binding: &Binding, carried: Carried, now: Timestamp) -> String {
        let payload = Payload {
            exp: now.saturating_add(self.ttl).as_millis(),
            c: binding.client.clone(),
            r: binding.request.clone(),
            n: carried.round,
            a: carried.answers,
        };
        let json = serde_json::to_vec(&payload).expect("a payload serializes");
        let mut sealed = String::with_capacity(PREFIX.len() + json.len() * 4 / 3 + 48);
        sealed.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(json, &mut sealed);
        let tag = self.tag(&sealed).finalize().into_bytes();
        sealed.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut sealed);
        sealed
    }

    /// What a presented state carries, if it is ours, unaltered, unexpired,
    /// and bound to this client and this request. `client` is asked only
    /// once the signature holds.
    pub(crate) fn open(
        &self,
        sealed: &str,
        client: impl FnOnce() -> String,
        request: &str,
        now: Timestamp,
    ) -> Result<Carried, StateError> {
        let (signed, tag) = sealed.rsplit_once('.').ok_or(StateError::Tampered)?;
        let payload = signed.strip_prefix(PREFIX).ok_or(StateError::Tampered)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| StateError::Tampered)?;
        self.tag(signed)
            .verify_slice(&tag)
            .map_err(|_| StateError::Tampered)?;
        // Signed by us, so well formed unless the key signed something else.
        let payload: Payload = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(StateError::Tampered)?;
        if now.as_millis() > payload.exp {
            return Err(StateError::Expired);
        }
        if payload.c != client() {
            return Err(StateError::OtherClient);
        }
        if payload.r != request {
            return Err(StateError::OtherRequest);
        }
        Ok(Carried {
            round: payload.n,
            answers: payload.a,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_verifies_only_its_own_parts_under_its_own_key() {
        let key = StateKey::generate();
        let tag = key.tag(&["client:a", "conf", "task-1"]);
        assert!(key.verify_tag(&["client:a", "conf", "task-1"], &tag));
        assert!(!key.verify_tag(&["client:b", "conf", "task-1"], &tag));
        assert!(!key.verify_tag(&["client:a", "conf", "task-2"], &tag));
        // Parts are length-prefixed: moving a boundary changes the tag.
        assert!(!key.verify_tag(&["client:a", "conftask-1", ""], &tag));
        assert!(!StateKey::generate().verify_tag(&["client:a", "conf", "task-1"], &tag));
        for garbage in ["", "!!", "AAAA", &tag[..tag.len() - 2]] {
            assert!(!key.verify_tag(&["client:a", "conf", "task-1"], garbage));
        }
    }

    fn request(method: &str, params: &str) -> Request {
        Request::new(
            method.into(),
            Some(serde_json::from_str::<Box<RawValue>>(params).unwrap()),
        )
    }

    fn binding() -> Binding {
        Binding {
            client: Binding::client(None, "anonymous/a/1"),
            request: Binding::request(&request("tools/call", r#"{"name":"t"}"#)),
        }
    }

    fn carried() -> Carried {
        let mut answers = Map::new();
        answers.insert("step1".into(), json!({"action": "accept"}));
        Carried { round: 1, answers }
    }

    const TTL: Duration = Duration::from_secs(600);

    #[test]
    fn a_sealed_state_opens_for_its_client_and_request_until_it_expires() {
        let states = RequestStates::new(&StateKey::generate(), TTL);
        let b = binding();
        let t0 = Timestamp::from_millis(1_000_000);
        let sealed = states.seal(&b, carried(), t0);
        let open = |s: &str, client: &str, request: &str, at| {
            states.open(s, || client.to_string(), request, at)
        };
        assert_eq!(open(&sealed, &b.client, &b.request, t0), Ok(carried()));
        assert_eq!(
            open(&sealed, &b.client, &b.request, t0.saturating_add(TTL)),
            Ok(carried())
        );
        assert_eq!(
            open(
                &sealed,
                &b.client,
                &b.request,
                t0.saturating_add(TTL + Duration::from_millis(1))
            ),
            Err(StateError::Expired)
        );
        let other = Binding::client(None, "anonymous/b/1");
        assert_eq!(
            open(&sealed, &other, &b.request, t0),
            Err(StateError::OtherClient)
        );
        let principal = Binding::client(Some("alice"), "anonymous/a/1");
        assert_ne!(principal, b.client);
        let elsewhere = Binding::request(&request("tools/call", r#"{"name":"u"}"#));
        assert_eq!(
            open(&sealed, &b.client, &elsewhere, t0),
            Err(StateError::OtherRequest)
        );
        // Another server's key, an appended suffix, a flipped byte, garbage.
        let foreign = RequestStates::new(&StateKey::generate(), TTL).seal(&b, carried(), t0);
        let mut flipped = sealed.clone().into_bytes();
        flipped[PREFIX.len() + 3] ^= 1;
        for bad in [
            foreign,
            format!("{sealed}-TAMPERED"),
            String::from_utf8(flipped).unwrap(),
            "".into(),
            "sg1.".into(),
            "not a state".into(),
        ] {
            assert_eq!(
                open(&bad, &b.client, &b.request, t0),
                Err(StateError::Tampered),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_request_digest_reads_only_the_salient_params_in_any_key_order() {
        let digest = |method: &str, params: &str| Binding::request(&request(method, params));
        let base = digest(
            "tools/call",
            r#"{"name":"t","arguments":{"a":1,"b":{"x":[1,"2"],"y":null}}}"#,
        );
        assert_eq!(
            base,
            digest(
                "tools/call",
                r#"{"arguments":{"b":{"y":null,"x":[1,"2"]},"a":1},"name":"t",
                    "_meta":{"progressToken":1},"inputResponses":{"k":{}},"requestState":"s"}"#,
            )
        );
        for other in [
            (
                "prompts/get",
                r#"{"name":"t","arguments":{"a":1,"b":{"x":[1,"2"],"y":null}}}"#,
            ),
            (
                "tools/call",
                r#"{"name":"u","arguments":{"a":1,"b":{"x":[1,"2"],"y":null}}}"#,
            ),
            (
                "tools/call",
                r#"{"name":"t","arguments":{"a":2,"b":{"x":[1,"2"],"y":null}}}"#,
            ),
            (
                "tools/call",
                r#"{"name":"t","arguments":{"a":1,"b":{"x":["2",1],"y":null}}}"#,
            ),
            ("tools/call", r#"{"name":"t"}"#),
        ] {
            assert_ne!(base, digest(other.0, other.1), "{other:?}");
        }
        // As sent, read the same way.
        let sent = |method: &str, params: &str| {
            Binding::request_sent(
                method,
                Some(&serde_json::from_str::<Box<RawValue>>(params).unwrap()),
            )
        };
        assert_eq!(
            base,
            sent(
                "tools/call",
                r#"{"_meta":{},"name":"t","arguments":{"b":{"y":null,"x":[1,"2"]},"a":1}}"#
            )
        );
        assert_eq!(
            digest("tools/call", "{}"),
            Binding::request_sent("tools/call", None)
        );
        // Name and uri are told apart.
        assert_ne!(
            digest("resources/read", r#"{"uri":"x"}"#),
            digest("resources/read", r#"{"name":"x"}"#)
        );
    }
}
