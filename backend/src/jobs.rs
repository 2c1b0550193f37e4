//! Background jobs, queued in PostgreSQL through apalis.
//!
//! apalis-postgres delivers a job at least once (a worker that dies mid-job has its job handed
//! to another), so every handler here must be safe to run twice.

use apalis_postgres::{Config, PostgresStorage};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::http::ApiError;
use crate::sessions::PgSessionStore;

/// Queue of the periodic upkeep job.
pub const UPKEEP_QUEUE: &str = "upkeep";

/// How long login attempts are kept: well past any throttling window, for investigations.
pub const LOGIN_ATTEMPT_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

/// The periodic clean-up: expired sessions and old login attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upkeep {
    /// When the scheduler queued it (Unix seconds), for logs.
    pub queued_at: i64,
}

impl Upkeep {
    /// Creates an upkeep job stamped with the current time.
    pub fn now() -> Self {
        Self {
            queued_at: time::OffsetDateTime::now_utc().unix_timestamp(),
        }
    }
}

/// Counts of the rows one upkeep run deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpkeepReport {
    /// Expired sessions deleted.
    pub sessions: u64,
    /// Old login attempts deleted.
    pub login_attempts: u64,
}

/// Creates the storage of the upkeep queue.
pub fn upkeep_storage(pool: &PgPool) -> PostgresStorage<Upkeep> {
    PostgresStorage::new(pool).with_config(Config::default().queue(UPKEEP_QUEUE))
}

/// Creates or upgrades apalis's own tables, in their `apalis` schema.
pub async fn setup_queue(pool: &PgPool) -> anyhow::Result<()> {
    PostgresStorage::<()>::setup(pool)
        .await
        .map_err(|error| anyhow::anyhow!("job queue set-up failed: {error}"))
}

/// Runs one upkeep. It only deletes rows already past their date, so a second delivery of the
/// same job finds nothing left to do.
pub async fn run_upkeep(pool: &PgPool) -> Result<UpkeepReport, ApiError> {
    let sessions = PgSessionStore::new(pool.clone())
        .delete_expired_count()
        .await?;
    let login_attempts =
        crate::accounts::prune_login_attempts(pool, LOGIN_ATTEMPT_RETENTION).await?;
    Ok(UpkeepReport {
        sessions,
        login_attempts,
    })
}
