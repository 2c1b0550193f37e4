//! The job ledger: one row per job across its attempts, and the apalis deliveries that carry
//! each attempt to a worker.
//!
//! Every state change of a job happens in one transaction with the delivery it implies. A retry
//! inserts the next delivery (scheduled with `run_at`, so it survives restarts) in the
//! transaction that records the failed attempt. A dead letter is written in the transaction that
//! marks the job dead.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::JobError;
use super::policy::{Decision, RetryPolicy};
use super::sanitize::{sanitize, sanitize_text};
use super::JOB_QUEUE;

/// Deliveries apalis may make of one attempt when our own bookkeeping fails (say the database
/// connection drops while recording the outcome). Retries of failed work are ours, not apalis's.
const TRANSPORT_ATTEMPTS: i32 = 3;

/// The payload of one delivery: the job's identity and arguments, and the attempt to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Stable id of the job across attempts.
    pub job_id: Uuid,
    /// Name of the handler that runs it, such as `demo.fail`.
    pub kind: String,
    /// The attempt this delivery runs, 1-based over the job's life.
    pub attempt: i32,
    /// Ties the job's logs to the request (or schedule) that queued it.
    pub correlation_id: String,
    /// The job's key for deduplication; handlers key their effects on it.
    pub idempotency_key: String,
    /// Owning tenant; `None` for system jobs.
    pub tenant_id: Option<Uuid>,
    /// When the job was first queued.
    #[serde(with = "time::serde::rfc3339")]
    pub enqueued_at: OffsetDateTime,
    /// The handler's arguments.
    pub args: Value,
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Handler name.
    pub kind: String,
    /// Handler arguments; never secrets.
    pub args: Value,
    /// Owning tenant.
    pub tenant_id: Option<Uuid>,
    /// Correlation id of the request or schedule queuing it.
    pub correlation_id: String,
    /// Deduplication key; a fresh one (the job id) when `None`.
    pub idempotency_key: Option<String>,
    /// Earliest start; now when `None`.
    pub run_at: Option<OffsetDateTime>,
    /// Whether a failure raises an alert.
    pub critical: bool,
}

impl NewJob {
    /// Creates a job of `kind` to run now, critical when its kind is.
    pub fn new(kind: &str, args: Value, correlation_id: impl Into<String>) -> Self {
        Self {
            kind: kind.to_string(),
            args,
            tenant_id: None,
            correlation_id: correlation_id.into(),
            idempotency_key: None,
            run_at: None,
            critical: super::is_critical_kind(kind),
        }
    }

    /// Sets the owning tenant.
    pub fn tenant(mut self, tenant_id: Uuid) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }

    /// Sets the deduplication key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Delays the first attempt until `run_at`.
    pub fn run_at(mut self, run_at: OffsetDateTime) -> Self {
        self.run_at = Some(run_at);
        self
    }

    /// Marks the job critical (or not) whatever its kind.
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }
}

/// The outcome of queuing a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id: new, or the existing job's when the key was taken.
    pub job_id: Uuid,
    /// False when a job with the same kind and key already existed.
    pub created: bool,
}

/// Queues a job inside the caller's transaction, so the job exists exactly when the caller's
/// own writes commit. A second call with the same kind and idempotency key returns the first
/// job and queues nothing.
pub async fn enqueue(conn: &mut PgConnection, job: NewJob) -> Result<Enqueued, sqlx::Error> {
    let job_id = Uuid::now_v7();
    let key = job.idempotency_key.unwrap_or_else(|| job_id.to_string());
    let now = OffsetDateTime::now_utc();
    let run_at = job.run_at.unwrap_or(now);
    let envelope = Envelope {
        job_id,
        kind: job.kind.clone(),
        attempt: 1,
        correlation_id: job.correlation_id.clone(),
        idempotency_key: key.clone(),
        tenant_id: job.tenant_id,
        enqueued_at: now,
        args: job.args.clone(),
    };
    let task_id = ulid::Ulid::generate().to_string();

    let inserted = sqlx::query(
        "INSERT INTO job_ledger (id, tenant_id, kind, idempotency_key, correlation_id, args, \
                                 critical, status, run_after, queue_task_id, enqueued_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $10) \
         ON CONFLICT (kind, idempotency_key) DO NOTHING",
    )
    .bind(job_id)
    .bind(job.tenant_id)
    .bind(&job.kind)
    .bind(&key)
    .bind(&job.correlation_id)
    .bind(&job.args)
    .bind(job.critical)
    .bind(run_at)
    .bind(&task_id)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();

    if inserted == 0 {
        let existing: Uuid = sqlx::query_scalar(
            "SELECT id FROM job_ledger WHERE kind = $1 AND idempotency_key = $2",
        )
        .bind(&job.kind)
        .bind(&key)
        .fetch_one(&mut *conn)
        .await?;
        return Ok(Enqueued {
            job_id: existing,
            created: false,
        });
    }

    push_delivery(conn, &task_id, &envelope, run_at).await?;
    Ok(Enqueued {
        job_id,
        created: true,
    })
}

/// Queues a job in its own transaction.
pub async fn enqueue_now(pool: &PgPool, job: NewJob) -> Result<Enqueued, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let enqueued = enqueue(&mut tx, job).await?;
    tx.commit().await?;
    Ok(enqueued)
}

/// Inserts the apalis row that delivers `envelope` at `run_at`. apalis-postgres 1.0 offers no
/// way to push inside a caller's transaction, so this writes its `apalis.jobs` row directly
/// (the column list of its 1.0 schema; the queue round-trip tests cover it). The apalis
/// idempotency key (job id and attempt) makes a second push of the same attempt a no-op.
async fn push_delivery(
    conn: &mut PgConnection,
    task_id: &str,
    envelope: &Envelope,
    run_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let bytes = serde_json::to_vec(envelope).map_err(|error| sqlx::Error::Encode(error.into()))?;
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, \
                                  priority, idempotency_key) \
         VALUES ($1, $2, $3, 'Pending', 0, $4, $5, 0, $6) \
         ON CONFLICT DO NOTHING",
    )
    .bind(task_id)
    .bind(JOB_QUEUE)
    .bind(bytes)
    .bind(TRANSPORT_ATTEMPTS)
    .bind(run_at)
    .bind(format!("{}:{}", envelope.job_id, envelope.attempt))
    .execute(conn)
    .await?;
    Ok(())
}

/// The ledger's view of a delivery that may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The current run (1 plus retries from the dead-letter page).
    pub run: i32,
    /// Deliveries of this attempt so far, this one included; above 1 after a crash.
    pub deliveries: i32,
}

/// Marks the delivered attempt as running. `None` when the attempt is no longer current (it
/// finished, was retried, or the job was discarded): the delivery is a duplicate to skip. A job
/// already `running` is claimed again, because that only happens when the worker running it
/// died and apalis handed it on.
pub async fn claim(pool: &PgPool, envelope: &Envelope) -> Result<Option<Claim>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE job_ledger \
            SET status = 'running', deliveries = deliveries + 1, started_at = now(), \
                updated_at = now() \
          WHERE id = $1 AND attempt = $2 AND status IN ('queued', 'running') \
      RETURNING run, deliveries",
    )
    .bind(envelope.job_id)
    .bind(envelope.attempt)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| Claim {
        run: row.get("run"),
        deliveries: row.get("deliveries"),
    }))
}

/// Records a successful attempt. Returns false when another delivery of the same attempt
/// finished first.
pub async fn complete(pool: &PgPool, envelope: &Envelope) -> Result<bool, sqlx::Error> {
    let entry = json!({
        "attempt": envelope.attempt,
        "outcome": "succeeded",
    });
    let done = sqlx::query(
        "UPDATE job_ledger \
            SET status = 'succeeded', finished_at = now(), updated_at = now(), progress = 100, \
                history = history || jsonb_build_array($3::jsonb \
                    || jsonb_build_object('run', run, 'started_at', started_at, \
                                          'finished_at', now(), 'deliveries', deliveries)) \
          WHERE id = $1 AND attempt = $2 AND status = 'running'",
    )
    .bind(envelope.job_id)
    .bind(envelope.attempt)
    .bind(entry)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// The result of recording a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureOutcome {
    /// Another attempt is scheduled.
    Retrying {
        /// Its attempt number.
        next_attempt: i32,
        /// When it may start.
        run_after: OffsetDateTime,
    },
    /// The job is dead; `dead_letter_id` is `None` when the dead letter already existed.
    Dead {
        /// The dead letter written now.
        dead_letter_id: Option<Uuid>,
        /// Whether the job's kind raises alerts.
        critical: bool,
    },
    /// The attempt was no longer current; nothing was recorded.
    Stale,
}

/// Records a failed attempt and decides, in one transaction, between scheduling the next
/// attempt and writing the dead letter. A critical job's dead letter also queues its alert in
/// that transaction.
pub async fn fail(
    pool: &PgPool,
    envelope: &Envelope,
    error: &JobError,
    policy: &RetryPolicy,
) -> Result<FailureOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT status, attempt, run, critical, history, started_at, deliveries \
           FROM job_ledger WHERE id = $1 FOR UPDATE",
    )
    .bind(envelope.job_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(FailureOutcome::Stale);
    };
    let status: String = row.get("status");
    let attempt: i32 = row.get("attempt");
    if status != "running" || attempt != envelope.attempt {
        return Ok(FailureOutcome::Stale);
    }
    let run: i32 = row.get("run");
    let critical: bool = row.get("critical");
    let history: Value = row.get("history");
    let started_at: Option<OffsetDateTime> = row.get("started_at");
    let deliveries: i32 = row.get("deliveries");

    let (class_failures, run_attempts) = count_failures(&history, run, error);
    let decision = policy.decide(
        error,
        class_failures + 1,
        run_attempts + 1,
        &mut rand::rng(),
    );
    let now = OffsetDateTime::now_utc();
    let chain: Vec<String> = error.chain.iter().map(|text| sanitize_text(text)).collect();
    let mut entry = json!({
        "run": run,
        "attempt": attempt,
        "started_at": started_at.map(rfc3339),
        "finished_at": rfc3339(now),
        "deliveries": deliveries,
        "class": error.class.as_str(),
        "error": chain.join(": "),
    });

    let outcome = match decision {
        Decision::Retry { delay, nominal } => {
            let run_after = now + delay;
            entry["outcome"] = json!("retry");
            entry["delay_ms"] = json!(delay.as_millis() as u64);
            entry["nominal_delay_ms"] = json!(nominal.as_millis() as u64);
            entry["next_run_at"] = json!(rfc3339(run_after));
            let next = Envelope {
                attempt: attempt + 1,
                ..envelope.clone()
            };
            let task_id = ulid::Ulid::generate().to_string();
            sqlx::query(
                "UPDATE job_ledger \
                    SET status = 'queued', attempt = $2, run_after = $3, queue_task_id = $4, \
                        deliveries = 0, updated_at = now(), \
                        history = history || jsonb_build_array($5::jsonb) \
                  WHERE id = $1",
            )
            .bind(envelope.job_id)
            .bind(next.attempt)
            .bind(run_after)
            .bind(&task_id)
            .bind(&entry)
            .execute(&mut *tx)
            .await?;
            push_delivery(&mut tx, &task_id, &next, run_after).await?;
            FailureOutcome::Retrying {
                next_attempt: next.attempt,
                run_after,
            }
        }
        Decision::GiveUp => {
            entry["outcome"] = json!("dead");
            sqlx::query(
                "UPDATE job_ledger \
                    SET status = 'dead', finished_at = now(), updated_at = now(), \
                        history = history || jsonb_build_array($2::jsonb) \
                  WHERE id = $1",
            )
            .bind(envelope.job_id)
            .bind(&entry)
            .execute(&mut *tx)
            .await?;
            let mut attempts = history;
            if let Value::Array(items) = &mut attempts {
                items.push(entry);
            }
            let dead_letter_id =
                insert_dead_letter(&mut tx, envelope, run, error, &chain, &attempts, critical)
                    .await?;
            if critical {
                if let Some(id) = dead_letter_id {
                    let alert = NewJob::new(
                        super::alerts::ALERT_KIND,
                        json!({ "dead_letter_id": id }),
                        envelope.correlation_id.clone(),
                    )
                    .idempotency_key(format!("dead-letter:{id}"))
                    .critical(false);
                    let alert = match envelope.tenant_id {
                        Some(tenant) => alert.tenant(tenant),
                        None => alert,
                    };
                    enqueue(&mut tx, alert).await?;
                }
            }
            FailureOutcome::Dead {
                dead_letter_id,
                critical,
            }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Counts this run's earlier failures of the error's class, and this run's earlier attempts.
fn count_failures(history: &Value, run: i32, error: &JobError) -> (u32, u32) {
    let entries = history.as_array().map(Vec::as_slice).unwrap_or_default();
    let this_run = entries
        .iter()
        .filter(|entry| entry["run"].as_i64() == Some(i64::from(run)));
    let mut class_failures = 0;
    let mut attempts = 0;
    for entry in this_run {
        attempts += 1;
        if entry["class"].as_str() == Some(error.class.as_str()) {
            class_failures += 1;
        }
    }
    (class_failures, attempts)
}

/// Writes the dead letter of a job's run; `None` when it already exists.
async fn insert_dead_letter(
    conn: &mut PgConnection,
    envelope: &Envelope,
    run: i32,
    error: &JobError,
    chain: &[String],
    attempts: &Value,
    critical: bool,
) -> Result<Option<Uuid>, sqlx::Error> {
    let attempt_count = attempts.as_array().map_or(0, Vec::len) as i32;
    sqlx::query_scalar(
        "INSERT INTO dead_letters (id, job_id, run, tenant_id, kind, error_class, error_chain, \
                                   attempts, attempt_count, correlation_id, critical, payload) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (job_id, run) DO NOTHING \
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(envelope.job_id)
    .bind(run)
    .bind(envelope.tenant_id)
    .bind(&envelope.kind)
    .bind(error.class.as_str())
    .bind(json!(chain))
    .bind(attempts)
    .bind(attempt_count)
    .bind(&envelope.correlation_id)
    .bind(critical)
    .bind(sanitize(&envelope.args))
    .fetch_optional(conn)
    .await
}

/// Starts a new run of a dead job: the next attempt is queued now with a fresh retry budget.
/// Returns false when the job is not dead (already retried by someone else, or discarded).
pub async fn restart_dead(conn: &mut PgConnection, job_id: Uuid) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT kind, attempt, correlation_id, idempotency_key, tenant_id, args, enqueued_at \
           FROM job_ledger WHERE id = $1 AND status = 'dead' FOR UPDATE",
    )
    .bind(job_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let envelope = Envelope {
        job_id,
        kind: row.get("kind"),
        attempt: row.get::<i32, _>("attempt") + 1,
        correlation_id: row.get("correlation_id"),
        idempotency_key: row.get("idempotency_key"),
        tenant_id: row.get("tenant_id"),
        enqueued_at: row.get("enqueued_at"),
        args: row.get("args"),
    };
    let task_id = ulid::Ulid::generate().to_string();
    let now = OffsetDateTime::now_utc();
    sqlx::query(
        "UPDATE job_ledger \
            SET status = 'queued', attempt = $2, run = run + 1, run_after = $3, \
                queue_task_id = $4, deliveries = 0, finished_at = NULL, updated_at = now() \
          WHERE id = $1",
    )
    .bind(job_id)
    .bind(envelope.attempt)
    .bind(now)
    .bind(&task_id)
    .execute(&mut *conn)
    .await?;
    push_delivery(conn, &task_id, &envelope, now).await?;
    Ok(true)
}

/// Sets a running job's progress (0-100) and an optional note shown beside it.
pub async fn set_progress(
    pool: &PgPool,
    job_id: Uuid,
    percent: u8,
    note: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE job_ledger SET progress = $2, progress_note = $3, updated_at = now() \
          WHERE id = $1 AND status = 'running'",
    )
    .bind(job_id)
    .bind(i16::from(percent.min(100)))
    .bind(note)
    .execute(pool)
    .await?;
    Ok(())
}

/// A job's state as the API and pages show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    /// Job id.
    pub id: Uuid,
    /// Handler name.
    pub kind: String,
    /// queued, running, succeeded, dead or discarded.
    pub status: String,
    /// Current attempt number.
    pub attempt: i32,
    /// Progress, 0-100.
    pub progress: i16,
    /// Note beside the progress.
    pub progress_note: Option<String>,
    /// Earliest start of the current attempt.
    #[serde(with = "time::serde::rfc3339")]
    pub run_after: OffsetDateTime,
    /// Finished attempts.
    pub history: Value,
}

/// Reads a job's state; tenant-owned jobs are visible only to their tenant.
pub async fn job_status(
    pool: &PgPool,
    tenant_id: Option<Uuid>,
    job_id: Uuid,
) -> Result<Option<JobStatus>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, kind, status, attempt, progress, progress_note, run_after, history \
           FROM job_ledger WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2",
    )
    .bind(job_id)
    .bind(tenant_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| JobStatus {
        id: row.get("id"),
        kind: row.get("kind"),
        status: row.get("status"),
        attempt: row.get("attempt"),
        progress: row.get("progress"),
        progress_note: row.get("progress_note"),
        run_after: row.get("run_after"),
        history: row.get("history"),
    }))
}

/// Finds ledger rows whose delivery apalis no longer holds (its row is gone, or it failed
/// beyond apalis's transport retries) and records a database-class failure for each, so the
/// normal retry rules apply and the job ends in dead letters at worst. Only rows untouched for
/// `stale_after` are considered, so a delivery in flight is never taken for lost.
pub async fn sweep_lost(
    pool: &PgPool,
    stale_after: std::time::Duration,
    policy: &RetryPolicy,
) -> Result<u64, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT l.id, l.kind, l.attempt, l.correlation_id, l.idempotency_key, l.tenant_id, \
                l.args, l.enqueued_at, l.status \
           FROM job_ledger l \
           LEFT JOIN apalis.jobs a ON a.id = l.queue_task_id \
          WHERE l.status IN ('queued', 'running') \
            AND l.updated_at < now() - make_interval(secs => $1) \
            AND l.run_after < now() - make_interval(secs => $1) \
            AND (a.id IS NULL \
                 OR a.status IN ('Done', 'Killed') \
                 OR (a.status = 'Failed' AND a.attempts >= a.max_attempts)) \
          LIMIT 500",
    )
    .bind(stale_after.as_secs_f64())
    .fetch_all(pool)
    .await?;

    let mut swept = 0;
    for row in rows {
        let envelope = Envelope {
            job_id: row.get("id"),
            kind: row.get("kind"),
            attempt: row.get("attempt"),
            correlation_id: row.get("correlation_id"),
            idempotency_key: row.get("idempotency_key"),
            tenant_id: row.get("tenant_id"),
            enqueued_at: row.get("enqueued_at"),
            args: row.get("args"),
        };
        // `fail` expects a running attempt; a lost queued delivery is marked running first.
        sqlx::query(
            "UPDATE job_ledger SET status = 'running', updated_at = now() \
              WHERE id = $1 AND attempt = $2 AND status = 'queued'",
        )
        .bind(envelope.job_id)
        .bind(envelope.attempt)
        .execute(pool)
        .await?;
        let error = JobError::new(
            super::error::ErrorClass::Database,
            format!(
                "the queue lost the delivery of attempt {} (worker or queue failure); \
                 recorded by the upkeep sweep",
                envelope.attempt
            ),
        );
        let outcome = fail(pool, &envelope, &error, policy).await?;
        tracing::warn!(
            job_id = %envelope.job_id,
            kind = envelope.kind,
            attempt = envelope.attempt,
            correlation_id = envelope.correlation_id,
            ?outcome,
            "lost job delivery recovered"
        );
        swept += 1;
    }
    Ok(swept)
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
