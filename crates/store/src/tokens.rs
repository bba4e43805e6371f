//! Reconnect tokens on either database: [`TokenStore`] for every
//! [`SqlStore`]. Tokens live on their sessions' rows; every call goes to
//! the writer, so a redemption reads what the last one wrote. The
//! compare-and-swap's text comes from the [`Dialect`].

use async_trait::async_trait;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use sessiongate_core::clock::Timestamp;
use sessiongate_core::ids::SessionId;
use sessiongate_core::store::{StoreResult, TokenStore};
use sessiongate_core::token::{ReconnectState, Redemption, TokenGrant};

use crate::dialect::{Dialect, RowsAffected, SqlStore};
use crate::rows::{db_err, ReconnectRow, RECONNECT_COLUMNS};

const SET_TOKEN: &str = "UPDATE sessions SET reconnect_token_hash = $1, reconnect_expires_at = $2 \
     WHERE session_id = $3";

#[async_trait]
impl<D> TokenStore for SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    <D::DB as Database>::QueryResult: RowsAffected,
    i64: for<'q> Encode<'q, D::DB> + for<'r> Decode<'r, D::DB> + Type<D::DB>,
    Option<i64>: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    String: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    for<'r> (i64,): FromRow<'r, <D::DB as Database>::Row>,
    for<'r> ReconnectRow: FromRow<'r, <D::DB as Database>::Row>,
{
    async fn set_reconnect_token(&self, id: SessionId, grant: TokenGrant) -> StoreResult<bool> {
        let n = sqlx::query(SET_TOKEN)
            .bind(grant.hash.to_hex())
            .bind(grant.expires_at.as_millis())
            .bind(id.to_string())
            .execute(self.db.writer())
            .await
            .map_err(db_err)?
            .rows();
        Ok(n == 1)
    }

    async fn reconnect_state(&self, id: SessionId) -> StoreResult<Option<ReconnectState>> {
        let row: Option<ReconnectRow> = sqlx::query_as(&format!(
            "SELECT {RECONNECT_COLUMNS} FROM sessions WHERE session_id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(self.db.writer())
        .await
        .map_err(db_err)?;
        row.map(ReconnectRow::into_state).transpose()
    }

    async fn redeem_reconnect_token(&self, r: &Redemption) -> StoreResult<Option<u64>> {
        let count: Option<i64> = sqlx::query_scalar(D::REDEEM_TOKEN)
            .bind(r.next.hash.to_hex())
            .bind(r.next.expires_at.as_millis())
            .bind(r.expected.to_hex())
            .bind(r.revive_at.map(Timestamp::as_millis))
            .bind(r.session_id.to_string())
            .fetch_optional(self.db.writer())
            .await
            .map_err(db_err)?;
        Ok(count.map(|c| u64::try_from(c).unwrap_or(0)))
    }
}
