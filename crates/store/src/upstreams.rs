//! The gateway's upstream sessions on either database:
//! [`UpstreamMappingStore`] for every [`SqlStore`]. One row per client
//! session and upstream, replaced whole on each save; every statement is
//! written once for both databases.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use sessiongate_core::ids::SessionId;
use sessiongate_core::store::{StoreResult, UpstreamMappingStore};
use sessiongate_core::upstream::{UpstreamMapping, UpstreamName};

use crate::dialect::{Dialect, RowsAffected, SqlStore};
use crate::rows::{
    self, db_err, UpstreamCountRow, UpstreamMappingRow, UpstreamMappingValues,
    UPSTREAM_MAPPING_COLUMNS,
};

#[async_trait]
impl<D> UpstreamMappingStore for SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    <D::DB as Database>::QueryResult: RowsAffected,
    i64: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    String: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    for<'q> &'q str: Encode<'q, D::DB> + Type<D::DB>,
    for<'q> Option<&'q str>: Encode<'q, D::DB> + Type<D::DB>,
    Json<Value>: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    Json<Vec<String>>: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    for<'r> UpstreamMappingRow: FromRow<'r, <D::DB as Database>::Row>,
    for<'r> UpstreamCountRow: FromRow<'r, <D::DB as Database>::Row>,
{
    async fn save_upstream_mapping(&self, mapping: &UpstreamMapping) -> StoreResult<()> {
        let v = UpstreamMappingValues::new(mapping);
        sqlx::query(&format!(
            "INSERT INTO upstream_mappings ({UPSTREAM_MAPPING_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (session_id, upstream) DO UPDATE SET \
               upstream_session_id = excluded.upstream_session_id, \
               protocol_version = excluded.protocol_version, \
               initialize_params = excluded.initialize_params, \
               log_level = excluded.log_level, \
               subscriptions = excluded.subscriptions, \
               updated_at = excluded.updated_at"
        ))
        .bind(v.session_id)
        .bind(v.upstream)
        .bind(v.upstream_session_id.as_deref())
        .bind(&*v.protocol_version)
        .bind(v.initialize_params)
        .bind(v.log_level.as_deref())
        .bind(v.subscriptions)
        .bind(v.updated_at)
        .execute(self.db.writer())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn upstream_mapping(
        &self,
        session_id: SessionId,
        upstream: &UpstreamName,
    ) -> StoreResult<Option<UpstreamMapping>> {
        let row: Option<UpstreamMappingRow> = sqlx::query_as(&format!(
            "SELECT {UPSTREAM_MAPPING_COLUMNS} FROM upstream_mappings \
             WHERE session_id = $1 AND upstream = $2"
        ))
        .bind(session_id.to_string())
        .bind(upstream.as_str())
        .fetch_optional(self.db.reader())
        .await
        .map_err(db_err)?;
        row.map(UpstreamMappingRow::into_mapping).transpose()
    }

    async fn delete_upstream_mappings(&self, session_id: SessionId) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM upstream_mappings WHERE session_id = $1")
            .bind(session_id.to_string())
            .execute(self.db.writer())
            .await
            .map_err(db_err)?;
        Ok(done.rows())
    }

    async fn upstream_mapping_counts(&self) -> StoreResult<Vec<(UpstreamName, u64)>> {
        let rows: Vec<UpstreamCountRow> = sqlx::query_as(
            "SELECT upstream, CAST(COUNT(*) AS BIGINT) AS n FROM upstream_mappings \
             GROUP BY upstream ORDER BY upstream",
        )
        .fetch_all(self.db.reader())
        .await
        .map_err(db_err)?;
        rows::upstream_counts(rows)
    }
}
