//! Dead letters: jobs that failed for good, and what admins do with them.
//!
//! Every query takes a scope: `Some(tenant)` for the web page and the REST API, which see only
//! their tenant's rows, and `None` for operators at the command line, who see every row
//! (including system jobs, which belong to no tenant).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::error::ErrorClass;
use super::ledger;
use crate::audit::{self, Actor, AuditEvent};

/// Most dead letters one list call returns.
pub const MAX_PAGE: i64 = 200;
/// Most dead letters one retry call accepts.
pub const MAX_RETRY_BATCH: usize = 1000;
/// Maximum length of a discard reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Filters of the dead-letter list; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Filter {
    /// Exact job kind.
    pub kind: Option<String>,
    /// Error class.
    pub class: Option<ErrorClass>,
    /// Critical or not.
    pub critical: Option<bool>,
    /// open (the default), retried, discarded, or all.
    pub status: Option<String>,
    /// Failed on or after this day (UTC).
    pub from: Option<Date>,
    /// Failed on or before this day (UTC).
    pub to: Option<Date>,
    /// Text searched for in the payload and the error chain, case-insensitively.
    pub search: Option<String>,
    /// Return rows older than this dead letter id (ids grow with time).
    pub cursor: Option<Uuid>,
    /// Page size, at most `MAX_PAGE`.
    pub limit: Option<i64>,
}

/// A dead letter in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterSummary {
    /// Dead letter id.
    pub id: Uuid,
    /// The failed job.
    pub job_id: Uuid,
    /// Job kind.
    pub kind: String,
    /// Error class of the last failure.
    pub error_class: ErrorClass,
    /// The last error's sentence.
    pub error: String,
    /// Attempts made.
    pub attempt_count: i32,
    /// Whether the kind raises alerts.
    pub critical: bool,
    /// open, retried or discarded.
    pub status: String,
    /// When the job failed for good.
    #[serde(with = "time::serde::rfc3339")]
    pub failed_at: OffsetDateTime,
}

/// A dead letter with everything the detail view shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// The list fields.
    #[serde(flatten)]
    pub summary: DeadLetterSummary,
    /// The run of the job that died (1 plus earlier retries from this page).
    pub run: i32,
    /// Owning tenant; `None` for system jobs.
    pub tenant_id: Option<Uuid>,
    /// The error sentence and its causes, sanitized.
    pub error_chain: Vec<String>,
    /// Attempt history with times, classes and delays.
    pub attempts: Value,
    /// Ties the job to the request that queued it and to its logs.
    pub correlation_id: String,
    /// The job's arguments with secrets and personal data redacted.
    pub payload: Value,
    /// When it was retried or discarded.
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    /// Email of the user who retried or discarded it.
    pub resolved_by: Option<String>,
    /// The reason given for discarding it.
    pub discard_reason: Option<String>,
    /// The job's state now (after a retry: queued, running, succeeded or dead again).
    pub job_status: String,
}

/// Errors of dead-letter actions that the caller must show.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// Unknown id, or another tenant's.
    #[error("dead letter {0} not found")]
    NotFound(Uuid),
    /// The dead letter was already retried or discarded.
    #[error("dead letter {id} is already {status}; only open dead letters can be {action}")]
    NotOpen {
        /// The dead letter.
        id: Uuid,
        /// Its status.
        status: String,
        /// The refused action, as a past participle.
        action: &'static str,
    },
    /// The request itself is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<ActionError> for crate::http::ApiError {
    fn from(error: ActionError) -> Self {
        use crate::http::ApiError;
        match error {
            ActionError::NotFound(_) => ApiError::NotFound(error.to_string()),
            ActionError::NotOpen { .. } => ApiError::Conflict {
                message: error.to_string(),
                existing_id: None,
            },
            ActionError::Invalid(message) => ApiError::Unprocessable {
                message,
                field: None,
                value: None,
            },
            ActionError::Database(error) => error.into(),
        }
    }
}

/// The actor of an action and the client it came from.
#[derive(Debug, Clone)]
pub struct ActionContext {
    /// The acting user or operator.
    pub actor: Actor,
    /// Client address of a web request.
    pub ip: Option<String>,
    /// Client user agent of a web request.
    pub user_agent: Option<String>,
    /// Correlation id of the request.
    pub correlation_id: Option<String>,
}

impl ActionContext {
    /// Describes a web or API request by a signed-in user.
    pub fn for_request(
        principal: &crate::accounts::Principal,
        client: &crate::http::ClientMeta,
        correlation: &crate::http::CorrelationId,
    ) -> Self {
        Self {
            actor: Actor::User {
                id: principal.user_id.0,
                email: principal.email.clone(),
            },
            ip: Some(client.ip.clone()),
            user_agent: Some(client.user_agent.clone()),
            correlation_id: Some(correlation.0.clone()),
        }
    }
}

const SUMMARY_COLUMNS: &str = "d.id, d.job_id, d.kind, d.error_class, d.error_chain->>0 AS error, \
     d.attempt_count, d.critical, d.status, d.failed_at";

/// Lists dead letters, newest first.
pub async fn list(
    pool: &PgPool,
    scope: Option<Uuid>,
    filter: &Filter,
) -> Result<Vec<DeadLetterSummary>, sqlx::Error> {
    let status = filter.status.as_deref().unwrap_or("open");
    let search = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(|text| format!("%{}%", escape_like(text)));
    let limit = filter.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM dead_letters d \
          WHERE ($1::uuid IS NULL OR d.tenant_id = $1) \
            AND ($2::text IS NULL OR d.kind = $2) \
            AND ($3::text IS NULL OR d.error_class = $3) \
            AND ($4::boolean IS NULL OR d.critical = $4) \
            AND ($5 = 'all' OR d.status = $5) \
            AND ($6::date IS NULL OR d.failed_at >= $6::date) \
            AND ($7::date IS NULL OR d.failed_at < $7::date + 1) \
            AND ($8::text IS NULL OR d.payload::text ILIKE $8 OR d.error_chain::text ILIKE $8) \
            AND ($9::uuid IS NULL OR d.id < $9) \
          ORDER BY d.id DESC LIMIT $10"
    )))
    .bind(scope)
    .bind(&filter.kind)
    .bind(filter.class.map(ErrorClass::as_str))
    .bind(filter.critical)
    .bind(status)
    .bind(filter.from)
    .bind(filter.to)
    .bind(search)
    .bind(filter.cursor)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(summary_from_row).collect())
}

fn summary_from_row(row: &sqlx::postgres::PgRow) -> DeadLetterSummary {
    let class: String = row.get("error_class");
    DeadLetterSummary {
        id: row.get("id"),
        job_id: row.get("job_id"),
        kind: row.get("kind"),
        error_class: ErrorClass::parse(&class).unwrap_or(ErrorClass::Permanent),
        error: row.get::<Option<String>, _>("error").unwrap_or_default(),
        attempt_count: row.get("attempt_count"),
        critical: row.get("critical"),
        status: row.get("status"),
        failed_at: row.get("failed_at"),
    }
}

/// Escapes `%`, `_` and `\` so user text matches literally inside ILIKE.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

/// Reads one dead letter.
pub async fn get(
    pool: &PgPool,
    scope: Option<Uuid>,
    id: Uuid,
) -> Result<Option<DeadLetter>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, d.run, d.tenant_id, d.error_chain, d.attempts, \
                d.correlation_id, d.payload, d.resolved_at, d.discard_reason, \
                u.email AS resolved_by, j.status AS job_status \
           FROM dead_letters d \
           JOIN job_ledger j ON j.id = d.job_id \
           LEFT JOIN users u ON u.id = d.resolved_by \
          WHERE d.id = $1 AND ($2::uuid IS NULL OR d.tenant_id = $2)"
    )))
    .bind(id)
    .bind(scope)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| {
        let chain: Value = row.get("error_chain");
        DeadLetter {
            summary: summary_from_row(&row),
            run: row.get("run"),
            tenant_id: row.get("tenant_id"),
            error_chain: serde_json::from_value(chain).unwrap_or_default(),
            attempts: row.get("attempts"),
            correlation_id: row.get("correlation_id"),
            payload: row.get("payload"),
            resolved_at: row.get("resolved_at"),
            resolved_by: row.get("resolved_by"),
            discard_reason: row.get("discard_reason"),
            job_status: row.get("job_status"),
        }
    }))
}

/// The result of a retry request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetryReport {
    /// Dead letters whose job was queued again.
    pub retried: Vec<Uuid>,
    /// Dead letters left alone: already retried or discarded, or unknown.
    pub skipped: Vec<Uuid>,
}

/// Queues the jobs of the given dead letters again, each with a fresh retry budget.
///
/// The selection is the list of ids, fixed by the caller. In one transaction, each open dead
/// letter is switched to `retried` by a conditional update, and only the rows this call
/// switched are queued, so a repeated or concurrent call with the same ids queues nothing more.
pub async fn retry(
    pool: &PgPool,
    scope: Option<Uuid>,
    ids: &[Uuid],
    context: &ActionContext,
) -> Result<RetryReport, ActionError> {
    if ids.is_empty() {
        return Err(ActionError::Invalid(
            "no dead letters selected: send at least one id in `ids`".to_string(),
        ));
    }
    if ids.len() > MAX_RETRY_BATCH {
        return Err(ActionError::Invalid(format!(
            "{} dead letters selected, but one retry takes at most {MAX_RETRY_BATCH}; split \
             the selection",
            ids.len()
        )));
    }
    let mut unique = ids.to_vec();
    unique.sort();
    unique.dedup();

    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "UPDATE dead_letters \
            SET status = 'retried', resolved_at = now(), resolved_by = $3 \
          WHERE id = ANY($1) AND status = 'open' AND ($2::uuid IS NULL OR tenant_id = $2) \
      RETURNING id, job_id, tenant_id, kind",
    )
    .bind(&unique)
    .bind(scope)
    .bind(actor_user_id(&context.actor))
    .fetch_all(&mut *tx)
    .await?;

    let mut retried = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: Uuid = row.get("id");
        let job_id: Uuid = row.get("job_id");
        let tenant_id: Option<Uuid> = row.get("tenant_id");
        let kind: String = row.get("kind");
        if !ledger::restart_dead(&mut tx, job_id).await? {
            // An open dead letter whose job is not dead breaks an invariant: queue nothing.
            tracing::warn!(dead_letter_id = %id, %job_id, "job is not dead; not queued");
            continue;
        }
        audit_action(
            &mut tx,
            tenant_id,
            context,
            "dead_letter.retry",
            id,
            json!({ "job_id": job_id, "kind": kind }),
        )
        .await?;
        retried.push(id);
    }
    tx.commit().await?;

    let skipped = unique
        .into_iter()
        .filter(|id| !retried.contains(id))
        .collect();
    Ok(RetryReport { retried, skipped })
}

/// Closes an open dead letter without running its job again; the reason is kept and audited.
pub async fn discard(
    pool: &PgPool,
    scope: Option<Uuid>,
    id: Uuid,
    reason: &str,
    context: &ActionContext,
) -> Result<(), ActionError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ActionError::Invalid(
            "a discard needs a reason: say why this job should not run again".to_string(),
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ActionError::Invalid(format!(
            "the discard reason has {} characters; keep it to {MAX_REASON_CHARS}",
            reason.chars().count()
        )));
    }

    let mut tx = pool.begin().await?;
    let current = sqlx::query(
        "SELECT status, tenant_id, job_id, kind FROM dead_letters \
          WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) FOR UPDATE",
    )
    .bind(id)
    .bind(scope)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ActionError::NotFound(id))?;
    let status: String = current.get("status");
    if status != "open" {
        return Err(ActionError::NotOpen {
            id,
            status,
            action: "discarded",
        });
    }
    let job_id: Uuid = current.get("job_id");
    sqlx::query(
        "UPDATE dead_letters \
            SET status = 'discarded', resolved_at = now(), resolved_by = $2, discard_reason = $3 \
          WHERE id = $1",
    )
    .bind(id)
    .bind(actor_user_id(&context.actor))
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE job_ledger SET status = 'discarded', updated_at = now() \
          WHERE id = $1 AND status = 'dead'",
    )
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    audit_action(
        &mut tx,
        current.get("tenant_id"),
        context,
        "dead_letter.discard",
        id,
        json!({ "job_id": job_id, "kind": current.get::<String, _>("kind"), "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn actor_user_id(actor: &Actor) -> Option<Uuid> {
    match actor {
        Actor::User { id, .. } => Some(*id),
        _ => None,
    }
}

/// Audits an action on a tenant's dead letter. System jobs' dead letters belong to no tenant
/// and so to no tenant's chain; their actions are logged instead.
async fn audit_action(
    conn: &mut sqlx::PgConnection,
    tenant_id: Option<Uuid>,
    context: &ActionContext,
    action: &str,
    id: Uuid,
    detail: Value,
) -> Result<(), sqlx::Error> {
    let Some(tenant_id) = tenant_id else {
        tracing::info!(action, dead_letter_id = %id, %detail, "action on a system dead letter");
        return Ok(());
    };
    let event = AuditEvent::new(
        tenant_id,
        context.actor.clone(),
        action,
        "dead_letter",
        id.to_string(),
        detail,
    )
    .client(
        context.ip.clone(),
        context.user_agent.clone(),
        context.correlation_id.clone(),
    );
    audit::record(conn, &event).await?;
    Ok(())
}

/// Count of open dead letters for one kind and class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KindClassCount {
    /// Job kind.
    pub kind: String,
    /// Error class.
    pub error_class: ErrorClass,
    /// Open dead letters.
    pub count: i64,
}

/// Dead letters that failed on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayCount {
    /// The day (UTC), as YYYY-MM-DD.
    pub day: String,
    /// Dead letters of that day, in any status.
    pub count: i64,
}

/// Numbers for the page's summary and chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stats {
    /// Open dead letters.
    pub open: i64,
    /// Open critical dead letters.
    pub open_critical: i64,
    /// Open dead letters per kind and class, largest first.
    pub by_kind_class: Vec<KindClassCount>,
    /// The last 7 days, oldest first, days without failures included.
    pub last_7_days: Vec<DayCount>,
}

/// Computes the statistics of the page.
pub async fn stats(pool: &PgPool, scope: Option<Uuid>) -> Result<Stats, sqlx::Error> {
    let totals = sqlx::query(
        "SELECT count(*) AS open, count(*) FILTER (WHERE critical) AS open_critical \
           FROM dead_letters WHERE status = 'open' AND ($1::uuid IS NULL OR tenant_id = $1)",
    )
    .bind(scope)
    .fetch_one(pool)
    .await?;
    let groups = sqlx::query(
        "SELECT kind, error_class, count(*) AS count FROM dead_letters \
          WHERE status = 'open' AND ($1::uuid IS NULL OR tenant_id = $1) \
          GROUP BY kind, error_class ORDER BY count DESC, kind, error_class",
    )
    .bind(scope)
    .fetch_all(pool)
    .await?;
    let days = sqlx::query(
        "SELECT to_char(day, 'YYYY-MM-DD') AS day, \
                (SELECT count(*) FROM dead_letters d \
                  WHERE ($1::uuid IS NULL OR d.tenant_id = $1) \
                    AND d.failed_at >= day AND d.failed_at < day + interval '1 day') AS count \
           FROM generate_series((now() AT TIME ZONE 'UTC')::date - 6, \
                                (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS day \
          ORDER BY day",
    )
    .bind(scope)
    .fetch_all(pool)
    .await?;
    Ok(Stats {
        open: totals.get("open"),
        open_critical: totals.get("open_critical"),
        by_kind_class: groups
            .iter()
            .map(|row| KindClassCount {
                kind: row.get("kind"),
                error_class: ErrorClass::parse(row.get::<&str, _>("error_class"))
                    .unwrap_or(ErrorClass::Permanent),
                count: row.get("count"),
            })
            .collect(),
        last_7_days: days
            .iter()
            .map(|row| DayCount {
                day: row.get("day"),
                count: row.get("count"),
            })
            .collect(),
    })
}

/// Rows removed by one prune.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Dead letters older than the retention.
    pub expired: u64,
    /// Dead letters beyond a tenant's cap.
    pub over_cap: u64,
}

/// Enforces retention and the per-tenant cap. Over the cap, the oldest non-critical rows go
/// first and critical rows only when no non-critical row is left. System rows (no tenant) share
/// one cap.
pub async fn prune(
    pool: &PgPool,
    retention: std::time::Duration,
    cap_per_tenant: i64,
) -> Result<PruneReport, sqlx::Error> {
    let expired =
        sqlx::query("DELETE FROM dead_letters WHERE failed_at < now() - make_interval(secs => $1)")
            .bind(retention.as_secs_f64())
            .execute(pool)
            .await?
            .rows_affected();
    let over_cap = sqlx::query(
        "DELETE FROM dead_letters d USING ( \
             SELECT id, row_number() OVER ( \
                        PARTITION BY tenant_id ORDER BY critical DESC, failed_at DESC, id DESC \
                    ) AS keep_rank \
               FROM dead_letters) ranked \
          WHERE d.id = ranked.id AND ranked.keep_rank > $1",
    )
    .bind(cap_per_tenant)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(PruneReport { expired, over_cap })
}
