//! Change sets and decisions in PostgreSQL: create, edit, decide, request apply, rollback.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::preview::{self, Preview};
use super::risk::Tier;
use super::{Action, Operation, APPLY_KIND, MAX_OPERATIONS, REQUEST_LIFETIME};
use crate::accounts::Principal;
use crate::audit::{self, Actor, AuditEvent};
use crate::http::{ApiError, ClientMeta, CorrelationId};
use crate::jobs::{self, NewJob};

/// The caller of a change-set action and the client it came from.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The signed-in user.
    pub principal: Principal,
    /// Address and user agent.
    pub client: ClientMeta,
    /// The request's correlation id.
    pub correlation_id: String,
}

impl Caller {
    /// Describes a request.
    pub fn new(principal: &Principal, client: &ClientMeta, correlation: &CorrelationId) -> Self {
        Self {
            principal: principal.clone(),
            client: client.clone(),
            correlation_id: correlation.0.clone(),
        }
    }

    fn tenant(&self) -> Uuid {
        self.principal.tenant_id.0
    }

    fn user(&self) -> Uuid {
        self.principal.user_id.0
    }

    fn audit(&self, action: &str, id: Uuid, detail: Value) -> AuditEvent {
        self.audit_event("change_set", action, id, detail)
    }

    /// Builds an audit event by this caller on `subject_type` `id`, with the client details.
    pub fn audit_event(
        &self,
        subject_type: &str,
        action: &str,
        id: Uuid,
        detail: Value,
    ) -> AuditEvent {
        AuditEvent::new(
            self.tenant(),
            Actor::User {
                id: self.user(),
                email: self.principal.email.clone(),
            },
            action,
            subject_type,
            id.to_string(),
            detail,
        )
        .client(
            Some(self.client.ip.clone()),
            Some(self.client.user_agent.clone()),
            Some(self.correlation_id.clone()),
        )
    }
}

/// A decision as the detail view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionView {
    /// Email of the person who decided.
    pub decided_by: String,
    /// approve or reject.
    pub decision: String,
    /// Their comment.
    pub comment: Option<String>,
    /// The revision decided on.
    pub revision: i32,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
}

/// A change set with its preview, tier and decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeSet {
    /// Id.
    pub id: Uuid,
    /// Short title.
    pub title: String,
    /// pending, approved, rejected, expired, applying, applied or rolled_back.
    pub status: String,
    /// Grows on every edit; approvals count for the current revision only.
    pub revision: i32,
    /// Email of the requester.
    pub requested_by: String,
    /// The operations, in order.
    pub operations: Vec<Operation>,
    /// Before and after per operation, risk and tier.
    pub preview: Preview,
    /// Risk score, 0-1.
    pub risk_score: f64,
    /// Approvals required.
    pub tier: Tier,
    /// Approvals of the current revision by people other than the requester.
    pub approvals: usize,
    /// Approvals still missing.
    pub approvals_missing: usize,
    /// Every decision, newest first.
    pub decisions: Vec<DecisionView>,
    /// The change set this one rolls back.
    pub rollback_of: Option<Uuid>,
    /// The pending or applied change set that rolls this one back.
    pub rolled_back_by: Option<Uuid>,
    /// The conversation it came from.
    pub conversation_id: Option<Uuid>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Decisions are refused after this.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was applied.
    #[serde(with = "time::serde::rfc3339::option")]
    pub applied_at: Option<OffsetDateTime>,
}

fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        message: message.into(),
        field: Some("operations".to_string()),
        value: None,
    }
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::Conflict {
        message: message.into(),
        existing_id: None,
    }
}

fn check_count(operations: &[Operation]) -> Result<(), ApiError> {
    if operations.is_empty() {
        return Err(unprocessable("a change set needs at least one operation"));
    }
    if operations.len() > MAX_OPERATIONS {
        return Err(unprocessable(format!(
            "{} operations; one change set takes at most {MAX_OPERATIONS}",
            operations.len()
        )));
    }
    Ok(())
}

/// Turns an invalid preview into a 422 listing each operation's errors.
fn invalid_preview(preview: &Preview) -> ApiError {
    unprocessable(format!("the change set is invalid: {}", preview.problems()))
}

/// Creates a pending change set after validating it; 422 lists each invalid operation.
pub async fn create(
    pool: &PgPool,
    caller: &Caller,
    title: &str,
    operations: Vec<Operation>,
    min_confidence: Option<f64>,
    conversation_id: Option<Uuid>,
) -> Result<ChangeSet, ApiError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::Unprocessable {
            message: "title must have 1 to 200 characters".to_string(),
            field: Some("title".to_string()),
            value: Some(title.to_string()),
        });
    }
    check_count(&operations)?;
    let mut tx = pool.begin().await?;
    let preview = preview::preview(&mut tx, caller.tenant(), &operations, min_confidence).await?;
    if !preview.valid {
        return Err(invalid_preview(&preview));
    }
    let id = insert(
        &mut tx,
        caller.tenant(),
        caller.user(),
        title,
        &operations,
        &preview,
        min_confidence,
        conversation_id,
        None,
    )
    .await?;
    audit::record(
        &mut tx,
        &caller.audit(
            "change_set.create",
            id,
            json!({
                "operations": operations.len(),
                "risk_score": preview.assessment.risk_score,
                "tier": preview.assessment.tier.as_str(),
            }),
        ),
    )
    .await?;
    tx.commit().await?;
    get(pool, caller.tenant(), id).await
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    requested_by: Uuid,
    title: &str,
    operations: &[Operation],
    preview: &Preview,
    min_confidence: Option<f64>,
    conversation_id: Option<Uuid>,
    rollback_of: Option<Uuid>,
) -> Result<Uuid, ApiError> {
    let id = Uuid::now_v7();
    let result = sqlx::query(
        "INSERT INTO change_sets (id, tenant_id, requested_by, title, status, operations, preview, \
                                  risk_score, tier, min_confidence, conversation_id, rollback_of, \
                                  expires_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7::numeric, $8, $9::numeric, $10, $11, $12)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(requested_by)
    .bind(title)
    .bind(json!(operations))
    .bind(json!(preview))
    .bind(preview.assessment.risk_score)
    .bind(preview.assessment.tier.as_str())
    .bind(min_confidence)
    .bind(conversation_id)
    .bind(rollback_of)
    .bind(OffsetDateTime::now_utc() + REQUEST_LIFETIME)
    .execute(conn)
    .await;
    match result {
        Ok(_) => Ok(id),
        Err(sqlx::Error::Database(error))
            if error.constraint() == Some("change_sets_rollback_once") =>
        {
            Err(conflict(
                "this change set already has a rollback; a change set is rolled back once",
            ))
        }
        Err(error) => Err(error.into()),
    }
}

/// Replaces the operations of a pending change set (requester only). The revision grows, so
/// approvals given so far no longer count.
pub async fn edit(
    pool: &PgPool,
    caller: &Caller,
    id: Uuid,
    operations: Vec<Operation>,
) -> Result<ChangeSet, ApiError> {
    check_count(&operations)?;
    let mut tx = pool.begin().await?;
    let row = lock(&mut tx, caller.tenant(), id).await?;
    if row.requested_by != caller.user() {
        return Err(ApiError::Forbidden(
            "only the requester can edit a change set".to_string(),
        ));
    }
    if row.status != "pending" {
        return Err(conflict(format!(
            "change set {id} is {}; only pending change sets can be edited",
            row.status
        )));
    }
    let preview =
        preview::preview(&mut tx, caller.tenant(), &operations, row.min_confidence).await?;
    if !preview.valid {
        return Err(invalid_preview(&preview));
    }
    sqlx::query(
        "UPDATE change_sets \
            SET operations = $2, preview = $3, risk_score = $4::numeric, tier = $5, \
                revision = revision + 1, updated_at = now() \
          WHERE id = $1",
    )
    .bind(id)
    .bind(json!(operations))
    .bind(json!(preview))
    .bind(preview.assessment.risk_score)
    .bind(preview.assessment.tier.as_str())
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &caller.audit(
            "change_set.edit",
            id,
            json!({ "revision": row.revision + 1, "operations": operations.len() }),
        ),
    )
    .await?;
    tx.commit().await?;
    get(pool, caller.tenant(), id).await
}

struct Locked {
    status: String,
    revision: i32,
    requested_by: Uuid,
    tier: Tier,
    risk_score: f64,
    min_confidence: Option<f64>,
    expires_at: OffsetDateTime,
    rollback_of: Option<Uuid>,
}

/// Locks a change set row for the rest of the transaction; 404 for another tenant's.
async fn lock(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> Result<Locked, ApiError> {
    let row = sqlx::query(
        "SELECT status, revision, requested_by, tier, risk_score::float8 AS risk_score, \
                min_confidence::float8 AS min_confidence, expires_at, rollback_of \
           FROM change_sets WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("change set {id} not found")))?;
    Ok(Locked {
        status: row.get("status"),
        revision: row.get("revision"),
        requested_by: row.get("requested_by"),
        tier: Tier::parse(row.get::<&str, _>("tier")).unwrap_or(Tier::TwoApprovers),
        risk_score: row.get("risk_score"),
        min_confidence: row.get("min_confidence"),
        expires_at: row.get("expires_at"),
        rollback_of: row.get("rollback_of"),
    })
}

/// Marks a pending change set expired when its time is up; returns whether it did.
async fn expire_if_due(conn: &mut PgConnection, id: Uuid, row: &Locked) -> Result<bool, ApiError> {
    let open = matches!(row.status.as_str(), "pending" | "approved");
    if open && row.expires_at <= OffsetDateTime::now_utc() {
        sqlx::query("UPDATE change_sets SET status = 'expired', updated_at = now() WHERE id = $1")
            .bind(id)
            .execute(conn)
            .await?;
        return Ok(true);
    }
    Ok(false)
}

/// approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Counts toward the tier.
    Approve,
    /// Ends the request.
    Reject,
}

/// Records a decision. One person counts once per revision, however often or concurrently they
/// decide. The requester never decides on their own change set, and a rejection ends the
/// request.
pub async fn decide(
    pool: &PgPool,
    caller: &Caller,
    id: Uuid,
    decision: Decision,
    comment: Option<&str>,
) -> Result<ChangeSet, ApiError> {
    if comment.is_some_and(|comment| comment.chars().count() > 2000) {
        return Err(ApiError::Unprocessable {
            message: "comment must have at most 2,000 characters".to_string(),
            field: Some("comment".to_string()),
            value: None,
        });
    }
    let mut tx = pool.begin().await?;
    let row = lock(&mut tx, caller.tenant(), id).await?;
    if expire_if_due(&mut tx, id, &row).await? {
        tx.commit().await?;
        return Err(conflict(format!(
            "change set {id} expired; ask the requester to submit it again"
        )));
    }
    if row.requested_by == caller.user() {
        return Err(ApiError::Forbidden(
            "you requested this change set; another approver must decide on it".to_string(),
        ));
    }
    if row.status != "pending" && row.status != "approved" {
        return Err(conflict(format!(
            "change set {id} is {}; decisions are taken only while it is pending",
            row.status
        )));
    }
    let decision_name = match decision {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
    };
    let inserted = sqlx::query(
        "INSERT INTO change_decisions (change_set_id, revision, tenant_id, decided_by, decision, \
                                       comment, ip, user_agent, risk_score, correlation_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric, $10) \
         ON CONFLICT (change_set_id, revision, decided_by) DO NOTHING",
    )
    .bind(id)
    .bind(row.revision)
    .bind(caller.tenant())
    .bind(caller.user())
    .bind(decision_name)
    .bind(comment)
    .bind(&caller.client.ip)
    .bind(&caller.client.user_agent)
    .bind(row.risk_score)
    .bind(&caller.correlation_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        // A repeated click: the first decision is kept.
        tx.commit().await?;
        return get(pool, caller.tenant(), id).await;
    }

    let new_status = match decision {
        Decision::Reject => "rejected",
        Decision::Approve => {
            let approvals = count_approvals(&mut tx, id, row.revision, row.requested_by).await?;
            if approvals >= row.tier.approvals_needed() {
                "approved"
            } else {
                "pending"
            }
        }
    };
    sqlx::query("UPDATE change_sets SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(new_status)
        .execute(&mut *tx)
        .await?;
    let mut event = caller.audit(
        &format!("change_set.{decision_name}"),
        id,
        json!({ "revision": row.revision, "comment": comment, "status": new_status }),
    );
    event.risk_score = Some((row.risk_score * 1000.0).round() as i32);
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    get(pool, caller.tenant(), id).await
}

async fn count_approvals(
    conn: &mut PgConnection,
    id: Uuid,
    revision: i32,
    requester: Uuid,
) -> Result<usize, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT decided_by) FROM change_decisions \
          WHERE change_set_id = $1 AND revision = $2 AND decision = 'approve' \
            AND decided_by <> $3",
    )
    .bind(id)
    .bind(revision)
    .bind(requester)
    .fetch_one(conn)
    .await?;
    Ok(count as usize)
}

/// Queues the apply job (requester only): for an approved change set, or a pending one whose
/// tier lets the requester apply it. Returns the job id.
pub async fn request_apply(pool: &PgPool, caller: &Caller, id: Uuid) -> Result<Uuid, ApiError> {
    let mut tx = pool.begin().await?;
    let row = lock(&mut tx, caller.tenant(), id).await?;
    if expire_if_due(&mut tx, id, &row).await? {
        tx.commit().await?;
        return Err(conflict(format!(
            "change set {id} expired before it was applied; submit it again"
        )));
    }
    if row.requested_by != caller.user() {
        return Err(ApiError::Forbidden(
            "only the requester applies a change set".to_string(),
        ));
    }
    let allowed =
        row.status == "approved" || (row.status == "pending" && row.tier == Tier::SelfApply);
    if !allowed {
        let missing = row.tier.approvals_needed();
        return Err(conflict(format!(
            "change set {id} is {} and needs {missing} approval(s) before it can be applied",
            row.status
        )));
    }
    let job = NewJob::new(
        APPLY_KIND,
        json!({ "change_set_id": id, "revision": row.revision }),
        caller.correlation_id.clone(),
    )
    .tenant(caller.tenant())
    .idempotency_key(format!("apply:{id}:{}", row.revision));
    let enqueued = jobs::enqueue(&mut tx, job).await?;
    sqlx::query(
        "UPDATE change_sets SET status = 'applying', apply_job_id = $2, updated_at = now() \
          WHERE id = $1",
    )
    .bind(id)
    .bind(enqueued.job_id)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &caller.audit(
            "change_set.apply_requested",
            id,
            json!({ "job_id": enqueued.job_id }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(enqueued.job_id)
}

/// A row that changed since the change set applied it, blocking a rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RollbackConflict {
    /// Kind of row.
    pub kind: String,
    /// Its key.
    pub key: Value,
    /// The row as the change set left it.
    pub expected: Option<Value>,
    /// The row now.
    pub current: Option<Value>,
}

/// The outcome of a rollback request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RollbackOutcome {
    /// A rollback change set was created and waits for its tier's approvals.
    Created {
        /// The rollback change set.
        change_set: Box<ChangeSet>,
    },
    /// Rows changed since the apply; nothing was created.
    Conflicts {
        /// The rows that differ.
        conflicts: Vec<RollbackConflict>,
    },
}

/// Builds a rollback change set from an applied change set's records, in reverse order: a create
/// becomes a delete, an update restores the row before, a delete recreates it. When a row no
/// longer equals what the apply left, the conflicts are returned and nothing is created.
pub async fn rollback(
    pool: &PgPool,
    caller: &Caller,
    id: Uuid,
) -> Result<RollbackOutcome, ApiError> {
    let mut tx = pool.begin().await?;
    let row = lock(&mut tx, caller.tenant(), id).await?;
    if row.rollback_of.is_some() {
        return Err(conflict(format!(
            "change set {id} is itself a rollback; apply a new change set instead"
        )));
    }
    if row.status != "applied" {
        return Err(conflict(format!(
            "change set {id} is {}; only applied change sets can be rolled back",
            row.status
        )));
    }
    let records = sqlx::query(
        "SELECT seq, kind, key, action, before, after FROM change_records \
          WHERE change_set_id = $1 ORDER BY seq DESC",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;

    let mut operations = Vec::new();
    let mut conflicts = Vec::new();
    for record in &records {
        let kind: crate::facility::Kind =
            serde_json::from_value(json!(record.get::<String, _>("kind")))
                .map_err(|error| ApiError::Internal(anyhow::anyhow!("bad record kind: {error}")))?;
        let key: Value = record.get("key");
        let key_map = key.as_object().cloned().unwrap_or_default();
        let before: Option<Value> = record.get("before");
        let after: Option<Value> = record.get("after");
        let current = crate::facility::read_row(&mut tx, caller.tenant(), kind, &key_map)
            .await?
            .map(Value::Object);
        if current != after {
            conflicts.push(RollbackConflict {
                kind: kind.as_str().to_string(),
                key: key.clone(),
                expected: after.clone(),
                current,
            });
            continue;
        }
        let data_only = |row: &Value| {
            let mut fields = row.as_object().cloned().unwrap_or_default();
            for column in kind.table().key {
                fields.remove(*column);
            }
            fields
        };
        let action: String = record.get("action");
        let operation = match action.as_str() {
            "create" => Operation {
                kind,
                action: Action::Delete,
                key: key_map,
                fields: Default::default(),
            },
            "update" => Operation {
                kind,
                action: Action::Update,
                key: key_map,
                fields: before.as_ref().map(data_only).unwrap_or_default(),
            },
            _ => Operation {
                kind,
                action: Action::Create,
                key: key_map,
                fields: before.as_ref().map(data_only).unwrap_or_default(),
            },
        };
        operations.push(operation);
    }
    if !conflicts.is_empty() {
        return Ok(RollbackOutcome::Conflicts { conflicts });
    }

    let preview = preview::preview(&mut tx, caller.tenant(), &operations, None).await?;
    if !preview.valid {
        return Err(invalid_preview(&preview));
    }
    let title: String = sqlx::query_scalar("SELECT title FROM change_sets WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let rollback_title: String = format!("Roll back: {title}").chars().take(200).collect();
    let rollback_id = insert(
        &mut tx,
        caller.tenant(),
        caller.user(),
        &rollback_title,
        &operations,
        &preview,
        None,
        None,
        Some(id),
    )
    .await?;
    audit::record(
        &mut tx,
        &caller.audit(
            "change_set.rollback_requested",
            id,
            json!({ "rollback_change_set_id": rollback_id, "operations": operations.len() }),
        ),
    )
    .await?;
    tx.commit().await?;
    let change_set = get(pool, caller.tenant(), rollback_id).await?;
    Ok(RollbackOutcome::Created {
        change_set: Box::new(change_set),
    })
}

/// Reads one change set with its decisions.
pub async fn get(pool: &PgPool, tenant_id: Uuid, id: Uuid) -> Result<ChangeSet, ApiError> {
    let row = sqlx::query(
        "SELECT c.id, c.title, c.status, c.revision, c.requested_by AS requester_id, \
                u.email AS requested_by, c.operations, c.preview, \
                c.risk_score::float8 AS risk_score, c.tier, c.rollback_of, c.conversation_id, \
                c.created_at, c.expires_at, c.applied_at \
           FROM change_sets c JOIN users u ON u.id = c.requested_by \
          WHERE c.id = $1 AND c.tenant_id = $2",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("change set {id} not found")))?;
    let decisions = sqlx::query(
        "SELECT u.email, d.decision, d.comment, d.revision, d.decided_at \
           FROM change_decisions d JOIN users u ON u.id = d.decided_by \
          WHERE d.change_set_id = $1 ORDER BY d.decided_at DESC",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let revision: i32 = row.get("revision");
    let tier = Tier::parse(row.get::<&str, _>("tier")).unwrap_or(Tier::TwoApprovers);
    let requester: Uuid = row.get("requester_id");
    let mut conn = pool.acquire().await?;
    let approvals = count_approvals(&mut conn, id, revision, requester).await?;
    let rolled_back_by: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM change_sets \
          WHERE rollback_of = $1 AND status NOT IN ('rejected', 'expired') LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let operations: Value = row.get("operations");
    let preview: Value = row.get("preview");
    Ok(ChangeSet {
        id,
        title: row.get("title"),
        status: row.get("status"),
        revision,
        requested_by: row.get("requested_by"),
        operations: serde_json::from_value(operations)
            .map_err(|error| ApiError::Internal(anyhow::anyhow!("stored operations: {error}")))?,
        preview: serde_json::from_value(preview)
            .map_err(|error| ApiError::Internal(anyhow::anyhow!("stored preview: {error}")))?,
        risk_score: row.get("risk_score"),
        tier,
        approvals,
        approvals_missing: tier.approvals_needed().saturating_sub(approvals),
        decisions: decisions
            .iter()
            .map(|decision| DecisionView {
                decided_by: decision.get("email"),
                decision: decision.get("decision"),
                comment: decision.get("comment"),
                revision: decision.get("revision"),
                decided_at: decision.get("decided_at"),
            })
            .collect(),
        rollback_of: row.get("rollback_of"),
        rolled_back_by,
        conversation_id: row.get("conversation_id"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        applied_at: row.get("applied_at"),
    })
}

/// A change set in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeSetSummary {
    /// Id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Status.
    pub status: String,
    /// Email of the requester.
    pub requested_by: String,
    /// Risk score.
    pub risk_score: f64,
    /// Tier.
    pub tier: Tier,
    /// Number of operations.
    pub operations: i32,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Lists the tenant's change sets, newest first, optionally by status and requester.
pub async fn list(
    pool: &PgPool,
    tenant_id: Uuid,
    status: Option<&str>,
    requested_by: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ChangeSetSummary>, ApiError> {
    let rows = sqlx::query(
        "SELECT c.id, c.title, c.status, u.email, c.risk_score::float8 AS risk_score, c.tier, \
                jsonb_array_length(c.operations) AS operations, c.created_at \
           FROM change_sets c JOIN users u ON u.id = c.requested_by \
          WHERE c.tenant_id = $1 AND ($2::text IS NULL OR c.status = $2) \
            AND ($3::uuid IS NULL OR c.requested_by = $3) \
          ORDER BY c.created_at DESC LIMIT $4",
    )
    .bind(tenant_id)
    .bind(status)
    .bind(requested_by)
    .bind(limit.clamp(1, 200))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| ChangeSetSummary {
            id: row.get("id"),
            title: row.get("title"),
            status: row.get("status"),
            requested_by: row.get("email"),
            risk_score: row.get("risk_score"),
            tier: Tier::parse(row.get::<&str, _>("tier")).unwrap_or(Tier::TwoApprovers),
            operations: row.get("operations"),
            created_at: row.get("created_at"),
        })
        .collect())
}
