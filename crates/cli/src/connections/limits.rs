//! What connections may take: the open-file limit raised at startup, the
//! connection cap derived from it, and the timeouts a connection lives by.

use std::io;
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_stays_below_the_open_file_limit() {
        assert_eq!(effective_max_connections(None, 20_000), 19_744);
        assert_eq!(effective_max_connections(Some(100), 20_000), 100);
        assert_eq!(effective_max_connections(Some(50_000), 1024), 768);
        assert_eq!(effective_max_connections(None, 300), 150);
    }
}
