//! Property tests of what the core parses from strangers: session ids,
//! stream and event ids (`Last-Event-ID`), reconnect tokens, and event-log
//! pages read back from the store. Arbitrary and mutated input must be
//! refused with an error, never a panic; valid input must round-trip.
//! `scripts/fuzz` runs these with many more cases.

use std::time::Duration;

use base64::Engine;
use proptest::prelude::*;
use sessiongate_core::stream::{EventId, EventPage, PageId, StreamId, StreamKind};
use sessiongate_core::token::{Refusal, SigningKey, TokenSigner};
use sessiongate_core::{SessionId, Timestamp};

fn session_id() -> impl Strategy<Value = SessionId> {
    any::<u128>().prop_map(|n| format!("{n:032x}").parse().expect("32 hex digits"))
}

fn stream_id() -> impl Strategy<Value = StreamId> {
    (any::<bool>(), any::<u64>()).prop_map(|(standalone, n)| StreamId {
        kind: if standalone {
            StreamKind::Standalone
        } else {
            StreamKind::Request
        },
        n,
    })
}

/// Strings close to ids, so that the parsers' edge cases are reached: a
/// kind letter, digits, signs, separators and blanks.
fn near_id(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::char::ranges(vec!['0'..='9', 'a'..='f', 'A'..='F'].into()),
            1 => proptest::sample::select(vec!['r', 'g', '+', '-', ' ', '\t', 'x', 'é', '\u{0}']),
        ],
        0..max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// An event id with at most one character of its stream or its position
/// replaced by a sign, blank or other letter.
fn almost_event_id() -> impl Strategy<Value = String> {
    let odd = proptest::option::of((
        any::<prop::sample::Index>(),
        proptest::sample::select(vec!['+', '-', ' ', 'G', 'x', '_']),
    ));
    (stream_id(), any::<u64>(), any::<bool>(), odd).prop_map(|(stream, seq, bare, odd)| {
        let mut text: Vec<char> = if bare {
            stream.to_string().chars().collect()
        } else {
            EventId { stream, seq }.to_string().chars().collect()
        };
        if let Some((at, c)) = odd {
            let at = at.index(text.len());
            text[at] = c;
        }
        text.into_iter().collect()
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn signer() -> TokenSigner {
    TokenSigner::new(
        &SigningKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec()),
        Duration::from_secs(900),
    )
}

const NOW: i64 = 1_700_000_000_000;

proptest! {
    #[test]
    fn session_ids_round_trip(id in session_id()) {
        let text = id.to_string();
        prop_assert_eq!(text.len(), 32);
        prop_assert_eq!(text.parse::<SessionId>().unwrap(), id);
        prop_assert_eq!(text.to_uppercase().parse::<SessionId>().unwrap(), id);
    }

    /// Only 32 hex digits parse, and what parses names the id it spells.
    #[test]
    fn only_32_hex_digits_are_a_session_id(s in prop_oneof![any::<String>(), near_id(40)]) {
        let is_hex = s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
        match s.parse::<SessionId>() {
            Ok(id) => {
                prop_assert!(is_hex, "{s:?} parsed");
                prop_assert_eq!(id.to_string(), s.to_ascii_lowercase());
            }
            Err(_) => prop_assert!(!is_hex, "{s:?} refused"),
        }
    }

    #[test]
    fn event_ids_round_trip(stream in stream_id(), seq in any::<u64>()) {
        let id = EventId { stream, seq };
        prop_assert_eq!(id.to_string().parse::<EventId>().unwrap(), id);
        prop_assert_eq!(stream.to_string().parse::<StreamId>().unwrap(), stream);
    }

    /// A `Last-Event-ID` that parses is one this server could have written,
    /// up to the case of its hex digits: no signs, blanks or other digits.
    #[test]
    fn what_parses_as_an_event_id_is_canonical(s in prop_oneof![
        any::<String>(),
        near_id(40),
        almost_event_id(),
    ]) {
        if let Ok(id) = s.parse::<EventId>() {
            prop_assert_eq!(id.to_string(), s.trim().to_ascii_lowercase());
        }
        if let Ok(id) = s.parse::<StreamId>() {
            prop_assert_eq!(id.to_string(), s.to_ascii_lowercase());
        }
    }

    #[test]
    fn pages_round_trip_any_events(
        session in session_id(),
        events in proptest::collection::vec(
            (stream_id(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..200)),
            0..20,
        ),
    ) {
        let mut page = EventPage::new(session, Timestamp::from_millis(NOW));
        for (stream, seq, message) in &events {
            page.push(*stream, *seq, message);
        }
        let back = page.into_events().unwrap();
        prop_assert_eq!(back.len(), events.len());
        for (e, (stream, seq, message)) in back.iter().zip(&events) {
            prop_assert_eq!(e.session_id, session);
            prop_assert_eq!(e.stream, *stream);
            prop_assert_eq!(e.seq, *seq);
            prop_assert_eq!(&e.message[..], &message[..]);
        }
    }

    /// A page's body comes from the store: whatever it holds, decoding ends
    /// with events that lie within it, one after another, or an error.
    #[test]
    fn malformed_pages_are_refused_or_stay_within_their_bytes(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            valid_body_mutated(),
        ],
    ) {
        let page = EventPage {
            session_id: "0123456789abcdef0123456789abcdef".parse().unwrap(),
            id: PageId(1),
            at: Timestamp::from_millis(NOW),
            body: body.clone(),
        };
        if let Ok(events) = page.into_events() {
            // Each message is preceded by a header of at least 21 bytes.
            let total: usize = events.iter().map(|e| e.message.len() + 21).sum();
            prop_assert!(total <= body.len());
            let mut from = 0;
            for e in &events {
                let found = find(&body[from..], &e.message).map(|at| from + at);
                prop_assert!(found.is_some(), "message not in the body");
                from = found.unwrap() + e.message.len();
            }
        }
    }

    #[test]
    fn issued_tokens_verify(session in session_id(), principal in proptest::option::of(any::<String>())) {
        let s = signer();
        let now = Timestamp::from_millis(NOW);
        let t = s.issue(session, principal.as_deref(), now);
        let claims = s.verify(&t.token, now).unwrap();
        prop_assert_eq!(claims.sid, session.to_string());
        prop_assert_eq!(claims.principal, principal);
    }

    #[test]
    fn arbitrary_strings_are_not_tokens(token in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,50}",
    ]) {
        prop_assert!(signer().verify(&token, Timestamp::from_millis(NOW)).is_err());
    }

    /// Any change to a valid token is refused: flipped bits, cut or
    /// appended bytes, swapped segments, another algorithm in the header.
    #[test]
    fn mutated_tokens_are_refused(session in session_id(), mutation in mutation()) {
        let s = signer();
        let now = Timestamp::from_millis(NOW);
        let token = s.issue(session, Some("alice"), now).token;
        let mutated = mutation.apply(&token);
        prop_assume!(mutated != token);
        let refused = s.verify(&mutated, now);
        prop_assert!(refused.is_err(), "{mutation:?} accepted");
        if matches!(mutation, Mutation::Algorithm(_)) {
            prop_assert!(
                matches!(refused, Err(Refusal::WrongAlgorithm | Refusal::BadSignature | Refusal::Malformed)),
                "{refused:?}"
            );
        }
    }
}

/// A valid page body with some bytes changed, cut off or inserted.
fn valid_body_mutated() -> impl Strategy<Value = Vec<u8>> {
    let events = proptest::collection::vec(
        (
            stream_id(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..40),
        ),
        1..5,
    );
    let edits =
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4);
    (events, edits).prop_map(|(events, edits)| {
        let mut page = EventPage::new(SessionId::generate(), Timestamp::from_millis(NOW));
        for (stream, seq, message) in &events {
            page.push(*stream, *seq, message);
        }
        let mut body = page.body;
        for (at, byte, kind) in edits {
            let i = at.index(body.len().max(1));
            match kind {
                0 if i < body.len() => body[i] = byte,
                1 => body.truncate(i),
                _ => body.insert(i.min(body.len()), byte),
            }
        }
        body
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Append(String),
    SwapSegments(usize, usize),
    Algorithm(&'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0..8u8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        "[A-Za-z0-9_.=-]{1,8}".prop_map(Mutation::Append),
        (0..3usize, 1..3usize).prop_map(|(a, d)| Mutation::SwapSegments(a, (a + d) % 3)),
        proptest::sample::select(vec![
            "none", "None", "NONE", "HS384", "HS512", "RS256", "ES256", "hs256", "HS256 ", "",
        ])
        .prop_map(Mutation::Algorithm),
    ]
}

impl Mutation {
    fn apply(&self, token: &str) -> String {
        match self {
            Mutation::FlipBit(i, bit) => {
                let mut bytes = token.as_bytes().to_vec();
                let i = i.index(bytes.len());
                bytes[i] ^= 1 << bit;
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Mutation::Truncate(i) => token[..i.index(token.len())].to_string(),
            Mutation::Append(tail) => format!("{token}{tail}"),
            Mutation::SwapSegments(a, b) => {
                let mut parts: Vec<&str> = token.split('.').collect();
                parts.swap(*a, *b);
                parts.join(".")
            }
            Mutation::Algorithm(alg) => {
                let mut parts = token.splitn(2, '.');
                let (_, rest) = (parts.next(), parts.next().unwrap_or_default());
                let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
                format!("{}.{rest}", b64(header.as_bytes()))
            }
        }
    }
}
