//! The periodic upkeep job: expired sessions, old login attempts, dead-letter retention and
//! cap, old finished jobs and provider call records, deliveries the queue lost, and stale or
//! stuck conversations.

use serde_json::{json, Value};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::error::JobError;
use super::ledger::{self, NewJob};
use super::runner::{JobContext, JobHandler};
use super::{dead_letters, JobSettings, JOB_QUEUE};
use crate::sessions::PgSessionStore;

/// Kind of the upkeep job.
pub const UPKEEP_KIND: &str = "system.upkeep";

/// How long login attempts are kept: well past any throttling window, for investigations.
pub const LOGIN_ATTEMPT_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

/// Counts of what one upkeep run removed or recovered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpkeepReport {
    /// Expired sessions deleted.
    pub sessions: u64,
    /// Old login attempts deleted.
    pub login_attempts: u64,
    /// Dead letters past retention deleted.
    pub dead_letters_expired: u64,
    /// Dead letters over a tenant's cap deleted.
    pub dead_letters_over_cap: u64,
    /// Succeeded jobs past retention deleted from the ledger and the queue.
    pub finished_jobs: u64,
    /// Model provider call records past retention deleted.
    pub provider_calls: u64,
    /// Lost deliveries recorded as failed attempts.
    pub lost_jobs: u64,
    /// Change sets that expired waiting.
    pub expired_change_sets: u64,
    /// URL sources queued for a refresh fetch.
    pub knowledge_refreshes: u64,
    /// Conversations cancelled after going idle.
    pub stale_conversations: u64,
    /// Conversations moved to error after generating recommendations too long.
    pub stuck_conversations: u64,
}

/// Runs one upkeep. Every step deletes only rows already past their date, or records a lost
/// delivery through the ledger's conditional updates, so a second delivery of the same job
/// finds nothing left to do.
pub async fn run_upkeep(pool: &PgPool, settings: &JobSettings) -> Result<UpkeepReport, JobError> {
    let sessions = PgSessionStore::new(pool.clone())
        .delete_expired_count()
        .await
        .map_err(|error| JobError::new(super::ErrorClass::Database, error.to_string()))?;
    let login_attempts = crate::accounts::prune_login_attempts(pool, LOGIN_ATTEMPT_RETENTION)
        .await
        .map_err(|error| JobError::new(super::ErrorClass::Database, error.to_string()))?;
    let pruned = dead_letters::prune(
        pool,
        settings.dead_letter_retention,
        settings.dead_letter_cap,
    )
    .await?;
    let finished_jobs = prune_finished_jobs(pool, settings.finished_job_retention).await?;
    let provider_calls = crate::providers::calls::prune(
        pool,
        settings
            .provider_call_retention
            .max(super::MIN_PROVIDER_CALL_RETENTION),
    )
    .await?;
    let lost_jobs = ledger::sweep_lost(pool, settings.lost_after, &settings.policy).await?;
    let expired_change_sets = expire_change_sets(pool).await?;
    let knowledge_refreshes = crate::knowledge::store::refresh_due(
        pool,
        &settings.knowledge,
        &format!("upkeep-{}", uuid::Uuid::now_v7()),
    )
    .await
    .map_err(|error| JobError::new(super::ErrorClass::Database, error.to_string()))?;
    let conversations = crate::conversations::lifecycle::expire(pool, &settings.conversations)
        .await
        .map_err(|error| JobError::new(super::ErrorClass::Database, format!("{error:?}")))?;
    Ok(UpkeepReport {
        stale_conversations: conversations.cancelled,
        stuck_conversations: conversations.failed,
        sessions,
        login_attempts,
        dead_letters_expired: pruned.expired,
        dead_letters_over_cap: pruned.over_cap,
        finished_jobs,
        provider_calls,
        lost_jobs,
        expired_change_sets,
        knowledge_refreshes,
    })
}

/// Marks change sets still waiting for decisions or an apply past their expiry as expired, so
/// lists show them as they are; deciding and applying check the expiry themselves too.
async fn expire_change_sets(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE change_sets SET status = 'expired', updated_at = now() \
          WHERE status IN ('pending', 'approved') AND expires_at <= now()",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

/// Deletes succeeded jobs past retention, and apalis's own finished rows.
async fn prune_finished_jobs(
    pool: &PgPool,
    retention: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let seconds = retention.as_secs_f64();
    let ledger_rows = sqlx::query(
        "DELETE FROM job_ledger \
          WHERE status = 'succeeded' AND finished_at < now() - make_interval(secs => $1)",
    )
    .bind(seconds)
    .execute(pool)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM apalis.jobs \
          WHERE job_type = $2 AND status = 'Done' AND done_at < now() - make_interval(secs => $1)",
    )
    .bind(seconds)
    .bind(JOB_QUEUE)
    .execute(pool)
    .await?;
    Ok(ledger_rows)
}

/// Queues the upkeep job of the current period. Every worker process calls this on its timer;
/// the idempotency key is the period's number, so the job runs once per period however many
/// workers there are.
pub async fn schedule_upkeep(pool: &PgPool, settings: &JobSettings) -> Result<bool, sqlx::Error> {
    let period = settings.upkeep_interval.as_secs().max(1) as i64;
    let bucket = OffsetDateTime::now_utc().unix_timestamp() / period;
    let job = NewJob::new(
        UPKEEP_KIND,
        json!({ "period_seconds": period, "bucket": bucket }),
        format!("upkeep-{bucket}"),
    )
    .idempotency_key(format!("{period}:{bucket}"));
    Ok(ledger::enqueue_now(pool, job).await?.created)
}

/// Handler of [`UPKEEP_KIND`].
pub struct UpkeepHandler {
    settings: JobSettings,
}

impl UpkeepHandler {
    /// Creates the handler with the retention and sweep settings it enforces.
    pub fn new(settings: JobSettings) -> Self {
        Self { settings }
    }
}

#[async_trait::async_trait]
impl JobHandler for UpkeepHandler {
    async fn run(&self, job: &JobContext, _args: Value) -> Result<(), JobError> {
        let report = run_upkeep(&job.pool, &self.settings).await?;
        tracing::info!(
            sessions = report.sessions,
            login_attempts = report.login_attempts,
            dead_letters_expired = report.dead_letters_expired,
            dead_letters_over_cap = report.dead_letters_over_cap,
            finished_jobs = report.finished_jobs,
            lost_jobs = report.lost_jobs,
            expired_change_sets = report.expired_change_sets,
            stale_conversations = report.stale_conversations,
            stuck_conversations = report.stuck_conversations,
            "upkeep done"
        );
        Ok(())
    }
}
