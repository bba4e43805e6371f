//! The test PostgreSQL: where it is, and a schema of its own per test so
//! that tests run in parallel and leave nothing behind.
//!
//! PostgreSQL is `$DATABASE_URL`, else [`DEFAULT_URL`]. A test that needs
//! it fails when it cannot be reached — CI must not pass by skipping —
//! unless `SESSIONGATE_SKIP_POSTGRES=1` asks to skip it.

use sqlx::{Connection, PgConnection};

use sessiongate_core::SessionId;

/// Where the test PostgreSQL is when `$DATABASE_URL` is unset or empty.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test PostgreSQL's URL.
pub fn url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

/// Whether `SESSIONGATE_SKIP_POSTGRES=1` asks to skip PostgreSQL tests;
/// says so on stderr, naming `what` is skipped.
pub fn skipped(what: &str) -> bool {
    let skip = std::env::var("SESSIONGATE_SKIP_POSTGRES").as_deref() == Ok("1");
    if skip {
        eprintln!("SESSIONGATE_SKIP_POSTGRES=1: skipping {what}");
    }
    skip
}

/// A fresh schema in the test PostgreSQL; [`Schema::drop`] removes it.
pub struct Schema {
    /// A URL whose connections work in this schema.
    pub url: String,
    name: String,
    admin: PgConnection,
}

impl Schema {
    /// Creates a schema named `prefix` and a random suffix. Panics, saying
    /// how to fix it, when PostgreSQL cannot be reached.
    pub async fn create(prefix: &str) -> Schema {
        let base = url();
        let mut admin = PgConnection::connect(&base).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is unreachable at {base} ({e}). This test needs it: \
                 start PostgreSQL or point DATABASE_URL at one, or set \
                 SESSIONGATE_SKIP_POSTGRES=1 to skip the PostgreSQL tests."
            )
        });
        let name = format!("{prefix}_{}", SessionId::generate());
        sqlx::raw_sql(&format!("CREATE SCHEMA {name}"))
            .execute(&mut admin)
            .await
            .expect("creating the test schema");
        Schema {
            url: with_search_path(&base, &name),
            name,
            admin,
        }
    }

    /// Drops the schema and everything in it.
    pub async fn drop(mut self) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&mut self.admin)
            .await
            .map(|_| ())
    }
}

/// `base` with `search_path` set to `schema` for every connection.
fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_path_joins_a_query_the_url_already_has() {
        assert_eq!(
            with_search_path("postgres://h/db", "s"),
            "postgres://h/db?options=-c%20search_path%3Ds"
        );
        assert_eq!(
            with_search_path("postgres://h/db?sslmode=disable", "s"),
            "postgres://h/db?sslmode=disable&options=-c%20search_path%3Ds"
        );
    }
}
