//! The listen address: an IP address or a host name, and a port, as flags,
//! the environment and the config file take it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::Deserialize;

/// Where to listen: an IP address or a host name, and a port. A host name
/// is resolved when the server binds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ListenAddr {
    host: String,
    port: u16,
}

impl ListenAddr {
    /// The host (an IPv6 address without brackets) and port, as
    /// [`tokio::net::TcpListener::bind`] takes them.
    pub fn host_port(&self) -> (&str, u16) {
        (&self.host, self.port)
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> Self {
        ListenAddr {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(addr.into());
        }
        // Without the input: clap and serde show it already.
        let wrong = || {
            "expected HOST:PORT with an IP address or a host name, e.g. 127.0.0.1:8051, \
             [::1]:8051 or localhost:8051"
                .to_string()
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(wrong)?;
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(wrong());
        }
        let port = port.parse::<u16>().map_err(|_| wrong())?;
        let name_like = |h: &str| {
            !h.is_empty()
                && h.len() <= 253
                && h.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        };
        // A bracketed host is an IPv6 address, and a name never ends in a
        // number (RFC 1123): a wrong address is not taken for a name.
        let numeric_end = host
            .rsplit('.')
            .next()
            .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()));
        if host.starts_with('[')
            || host.parse::<IpAddr>().is_ok()
            || numeric_end
            || !name_like(host)
        {
            return Err(wrong());
        }
        Ok(ListenAddr {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl TryFrom<String> for ListenAddr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_addresses_and_host_names() {
        for (input, host, port, shown) in [
            ("127.0.0.1:8051", "127.0.0.1", 8051, "127.0.0.1:8051"),
            ("[::1]:80", "::1", 80, "[::1]:80"),
            ("localhost:8051", "localhost", 8051, "localhost:8051"),
            (
                "GW-1.Example.org:0",
                "gw-1.example.org",
                0,
                "gw-1.example.org:0",
            ),
        ] {
            let listen: ListenAddr = input.parse().unwrap();
            assert_eq!(listen.host_port(), (host, port), "{input}");
            assert_eq!(listen.to_string(), shown);
        }
        for bad in [
            "localhost",
            "localhost:",
            "localhost:99999",
            "localhost:+80",
            ":8051",
            "1.2.3:80",
            "[::1:80",
            "::1:80",
            "a b:80",
            "a..b:80",
        ] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad:?} accepted");
        }
    }
}
