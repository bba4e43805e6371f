//! Identifiers. Session and task ids are 128 bits from the operating
//! system's CSPRNG, written as 32 lowercase hex digits on the wire and in
//! the store; logs above debug level write only their [`ShortId`].

use std::fmt;
use std::str::FromStr;

use rand::TryRngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 128-bit identifier from the OS CSPRNG, written as 32 lowercase hex
/// digits: unguessable, so holding one is the capability to use what it
/// names. Logs above debug level write only its [`ShortId`].
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $invalid:ident, $refusal:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u128);

        impl $name {
            /// A fresh id from the OS CSPRNG.
            pub fn generate() -> Self {
                let mut bytes = [0u8; 16];
                rand::rngs::OsRng
                    .try_fill_bytes(&mut bytes)
                    .expect("the operating system's random number generator failed");
                $name(u128::from_be_bytes(bytes))
            }

            /// The id's first 8 hex digits, for logs: enough to tell ids
            /// apart, too few to use one (the full id is a credential).
            pub fn short(self) -> ShortId {
                ShortId((self.0 >> 96) as u32)
            }
        }

        /// A string that is not such an id: 32 hex digits.
        #[derive(Debug, thiserror::Error)]
        #[error($refusal)]
        pub struct $invalid;

        impl FromStr for $name {
            type Err = $invalid;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex128(s).map($name).ok_or($invalid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex128(self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

random_id!(
    /// The id of an MCP session, as carried in `Mcp-Session-Id`.
    SessionId,
    InvalidSessionId,
    "a session id is 32 hexadecimal digits"
);

random_id!(
    /// The id of a task (the tasks extension), as `tasks/get` names it.
    TaskId,
    InvalidTaskId,
    "a task id is 32 hexadecimal digits"
);

/// 32 hex digits as a number.
fn parse_hex128(s: &str) -> Option<u128> {
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

/// A number as 32 lowercase hex digits. Every logged request writes its
/// session id: `{:032x}` on a u128 cost ten times this.
fn write_hex128(n: u128, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut digits = [0u8; 32];
    hex::encode_to_slice(n.to_be_bytes(), &mut digits).map_err(|_| fmt::Error)?;
    f.pad(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
}

/// The first 8 hex digits of an id, as logs write it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortId(u32);

impl fmt::Display for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShortId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_malformed() {
        let id = SessionId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<SessionId>().unwrap(), id);
        assert_eq!(
            SessionId(0xABC).to_string(),
            "00000000000000000000000000000abc"
        );
        for bad in [
            "",
            "xyz",
            "0123",
            &"g".repeat(32),
            &"0".repeat(33),
            "+0000000000000000000000000000000",
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn short_form_is_the_first_eight_digits() {
        let id = SessionId::generate();
        assert_eq!(id.short().to_string(), id.to_string()[..8]);
        assert_eq!(SessionId(0xABC).short().to_string(), "00000000");
    }

    #[test]
    fn ids_differ() {
        assert_ne!(SessionId::generate(), SessionId::generate());
    }
}
