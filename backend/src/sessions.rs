//! A tower-sessions store on PostgreSQL through sqlx 0.9.
//!
//! The published PostgreSQL store is built on sqlx 0.8 and does not compile against
//! tower-sessions 0.15, hence this one: one table, expired rows removed by a periodic task.

use async_trait::async_trait;
use sqlx::PgPool;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

/// Session records in the `sessions` table.
#[derive(Debug, Clone)]
pub struct PgSessionStore {
    pool: PgPool,
}

impl PgSessionStore {
    /// Creates a store over `pool`; the table comes from the migrations.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Runs `sql` with the record's id, data and expiry as `$1`, `$2` and `$3`, and returns the
    /// number of rows it touched.
    async fn write(&self, sql: &'static str, record: &Record) -> session_store::Result<u64> {
        let result = sqlx::query(sql)
            .bind(record.id.to_string())
            .bind(encode(record)?)
            .bind(record.expiry_date)
            .execute(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(result.rows_affected())
    }

    /// Deletes expired sessions and returns how many there were.
    pub async fn delete_expired_count(&self) -> Result<u64, sqlx::Error> {
        let deleted = sqlx::query("DELETE FROM sessions WHERE expiry_date <= now()")
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }
}

fn backend_error(error: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

fn encode(record: &Record) -> session_store::Result<serde_json::Value> {
    serde_json::to_value(&record.data)
        .map_err(|error| session_store::Error::Encode(error.to_string()))
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // Ids are 128 random bits, so a collision is unlikely; on one, draw a new id rather than
        // overwrite another person's session.
        loop {
            let inserted = self
                .write(
                    "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO NOTHING",
                    record,
                )
                .await?;
            if inserted == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        // Update only: a request that loaded the session before a logout deleted it must not
        // write it back. New sessions always arrive through `create`.
        self.write(
            "UPDATE sessions SET data = $2, expiry_date = $3 WHERE id = $1",
            record,
        )
        .await?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(serde_json::Value, time::OffsetDateTime)> = sqlx::query_as(
            "SELECT data, expiry_date FROM sessions WHERE id = $1 AND expiry_date > now()",
        )
        .bind(session_id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_error)?;

        let Some((data, expiry_date)) = row else {
            return Ok(None);
        };
        let data = serde_json::from_value(data)
            .map_err(|error| session_store::Error::Decode(error.to_string()))?;
        Ok(Some(Record {
            id: *session_id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(session_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for PgSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        let deleted = sqlx::query("DELETE FROM sessions WHERE expiry_date <= now()")
            .execute(&self.pool)
            .await
            .map_err(backend_error)?;
        tracing::debug!(
            deleted = deleted.rows_affected(),
            "expired sessions deleted"
        );
        Ok(())
    }
}
