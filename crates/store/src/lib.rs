//! Durable storage for sessiongate: the store ports of `sessiongate-core`
//! (sessions, request log, analytics, tokens, event log, tasks, upstream
//! mappings), implemented on
//! SQLite ([`SqliteStore`]) and PostgreSQL ([`PostgresStore`]).
//!
//! This crate owns the database schema and its versioned migrations
//! (`migrations/sqlite`, `migrations/postgres`, embedded at compile time and
//! applied on [`connect`]), connection setup and pooling, and the mapping
//! between rows and domain records. Timestamps are stored as BIGINT
//! milliseconds since the Unix epoch, UTC, in both backends. Both backends
//! are held to the same behaviour by the contract suite in
//! `tests/contract.rs`.
//!
//! It is laid out by concern, each port implemented once for both
//! databases (`sessions`, `request_log`, `analytics`, `tokens`,
//! `event_log`, `tasks`, `upstreams`, with pruning by age in `retention` and the row mapping in
//! `rows`); `sqlite` and `postgres` hold each database's connections,
//! migrations and dialect, the part of the SQL they do not share (see
//! `dialect`).

mod analytics;
mod dialect;
mod event_log;
mod postgres;
mod request_log;
mod retention;
mod rows;
mod sessions;
mod sqlite;
mod tasks;
mod tokens;
mod upstreams;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use sessiongate_core::store::{Store, StoreError};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Where sessions are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite database file; it and its parent directory are created when
    /// missing.
    Sqlite { path: PathBuf },
    /// A PostgreSQL database, by connection URL
    /// (`postgres://user:password@host:port/db?options`).
    Postgres { url: String },
}

impl Database {
    /// Reads a database location: a `postgres://` or `postgresql://` URL, an
    /// `sqlite://PATH` or `sqlite:PATH` URL (`sqlite:///abs/path` for an
    /// absolute path; a `?query` is ignored), or a bare path to an SQLite
    /// file. A bare path must look like one (hold a `/` or end in `.db`,
    /// `.sqlite` or `.sqlite3`): a mistyped URL would otherwise become a new,
    /// empty database file. In-memory SQLite is refused: every pooled
    /// connection would see its own empty database.
    pub fn from_url_or_path(s: &str) -> Result<Self, InvalidDatabase> {
        let s = s.trim();
        let invalid = |why: &str| InvalidDatabase {
            input: s.to_string(),
            reason: why.to_string(),
        };
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Database::Postgres { url: s.to_string() });
        }
        let path = if lower.starts_with("sqlite:") {
            let rest = &s["sqlite:".len()..];
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            rest.split_once('?').map_or(rest, |(path, _)| path)
        } else if let Some((scheme, _)) = s.split_once("://") {
            return Err(invalid(&format!(
                "unsupported scheme {scheme:?}; {ACCEPTED_FORMS}"
            )));
        } else if looks_like_a_database_file(s) {
            s
        } else {
            return Err(invalid(&format!(
                "neither a database URL nor a path to a database file; {ACCEPTED_FORMS}"
            )));
        };
        if path.is_empty() {
            return Err(invalid("no file path"));
        }
        if path == ":memory:" || path.starts_with("file::memory:") || path.contains("mode=memory") {
            return Err(invalid(
                "in-memory SQLite is not supported; give a file path",
            ));
        }
        Ok(Database::Sqlite {
            path: PathBuf::from(path),
        })
    }

    /// The backend's name, as [`Store::backend`] reports it.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite { .. } => sqlite::BACKEND,
            Database::Postgres { .. } => postgres::BACKEND,
        }
    }
}

/// What [`Database::from_url_or_path`] accepts, for its errors.
const ACCEPTED_FORMS: &str = "use postgres://..., postgresql://..., sqlite:PATH, sqlite://PATH, \
     or a path to a database file (holding a / or ending in .db, .sqlite or .sqlite3)";

fn looks_like_a_database_file(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    s.contains('/')
        || s.contains(std::path::MAIN_SEPARATOR)
        || [".db", ".sqlite", ".sqlite3"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// A database location [`Database::from_url_or_path`] does not accept.
#[derive(Debug, thiserror::Error)]
#[error("invalid database {input:?}: {reason}")]
pub struct InvalidDatabase {
    input: String,
    reason: String,
}

/// Shows the location without a PostgreSQL password, so it can be logged.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite { path } => write!(f, "sqlite:{}", path.display()),
            Database::Postgres { url } => f.write_str(&redact_password(url)),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Database::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &redact_password(url))
                .finish(),
        }
    }
}

/// `scheme://user:secret@host/...` as `scheme://user:***@host/...`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Opens the database, applies any pending migrations, and returns the store.
pub async fn connect(database: &Database) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match database {
        Database::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
        Database::Postgres { url } => Arc::new(PostgresStore::connect(url).await?),
    };
    tracing::info!(database = %database, "session store ready");
    Ok(store)
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Migrations the database had before.
    pub before: usize,
    /// Migrations applied now.
    pub applied: usize,
}

/// Applies any pending migrations and closes the connection. Applying them
/// again is a no-op; a database migrated by a newer version is refused.
pub async fn migrate(database: &Database) -> Result<Migrated, StoreError> {
    let migrated = match database {
        Database::Sqlite { path } => {
            let (store, migrated) = SqliteStore::open_migrated(path).await?;
            store.close().await;
            migrated
        }
        Database::Postgres { url } => {
            let (store, migrated) = PostgresStore::connect_migrated(url).await?;
            store.close().await;
            migrated
        }
    };
    Ok(migrated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        let sqlite = |p: &str| Database::Sqlite { path: p.into() };
        let cases = [
            ("sessions.db", sqlite("sessions.db")),
            ("state.sqlite3", sqlite("state.sqlite3")),
            ("./state", sqlite("./state")),
            ("/var/lib/sg/sessions.db", sqlite("/var/lib/sg/sessions.db")),
            ("sqlite://data/s.db", sqlite("data/s.db")),
            ("sqlite:///abs/s.db", sqlite("/abs/s.db")),
            ("sqlite:s.db?mode=rwc", sqlite("s.db")),
            (
                "postgres://u:p@h:5432/db",
                Database::Postgres {
                    url: "postgres://u:p@h:5432/db".into(),
                },
            ),
            (
                "postgresql://h/db",
                Database::Postgres {
                    url: "postgresql://h/db".into(),
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Database::from_url_or_path(input).unwrap(), want, "{input}");
        }
        for bad in [
            "",
            "  ",
            "sqlite://",
            "sqlite::memory:",
            ":memory:",
            "mysql://h/db",
            "garbage",
            "localhost",
        ] {
            assert!(Database::from_url_or_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn display_hides_the_password() {
        let db =
            Database::from_url_or_path("postgres://app:s3cret@db:5432/sg?sslmode=disable").unwrap();
        assert_eq!(
            db.to_string(),
            "postgres://app:***@db:5432/sg?sslmode=disable"
        );
        assert!(!format!("{db:?}").contains("s3cret"));
        let db = Database::from_url_or_path("postgres://app@db/sg").unwrap();
        assert_eq!(db.to_string(), "postgres://app@db/sg");
    }
}
