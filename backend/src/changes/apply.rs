//! Applying a change set: one transaction under the tenant's configuration lock, one change
//! record per operation.

use serde_json::{json, Map, Value};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::preview;
use super::{Action, Operation};
use crate::audit::{self, Actor, AuditEvent};
use crate::facility::key_condition;
use crate::jobs::{JobContext, JobError, JobHandler};

/// The result of one apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The operations were applied now.
    Applied {
        /// Operations applied.
        operations: usize,
    },
    /// The change set was not waiting to be applied (already applied by an earlier delivery).
    NothingToDo,
}

/// Applies change set `id` if it is `applying`. Everything happens in one transaction that
/// first locks the tenant's configuration version, so concurrent applies of a tenant queue up
/// and a second delivery of the same job finds the change set applied and does nothing.
pub async fn apply(
    pool: &sqlx::PgPool,
    tenant_id: Uuid,
    id: Uuid,
    correlation_id: &str,
) -> Result<ApplyOutcome, JobError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO config_versions (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT version FROM config_versions WHERE tenant_id = $1 FOR UPDATE")
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query(
        "SELECT status, operations, rollback_of, conversation_id FROM change_sets \
          WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| JobError::permanent(format!("change set {id} not found")))?;
    let status: String = row.get("status");
    if status != "applying" {
        return Ok(ApplyOutcome::NothingToDo);
    }
    let operations: Vec<Operation> = serde_json::from_value(row.get("operations"))
        .map_err(|error| JobError::permanent(format!("stored operations are invalid: {error}")))?;

    // The configuration may have moved since approval: validate again under the lock.
    let preview = preview::preview(&mut tx, tenant_id, &operations, None).await?;
    if !preview.valid {
        return Err(JobError::permanent(format!(
            "change set {id} no longer fits the configuration: {}",
            preview.problems()
        )));
    }

    for item in &preview.items {
        let operation = &item.operation;
        let key: Map<String, Value> = operation
            .kind
            .table()
            .key
            .iter()
            .filter_map(|column| {
                operation
                    .key
                    .get(*column)
                    .map(|value| (column.to_string(), value.clone()))
            })
            .collect();
        execute(&mut tx, tenant_id, operation, &key, item.after.as_ref()).await?;
        sqlx::query(
            "INSERT INTO change_records (change_set_id, seq, tenant_id, kind, key, action, before, \
                                         after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(item.seq as i32)
        .bind(tenant_id)
        .bind(operation.kind.as_str())
        .bind(Value::Object(key))
        .bind(operation.action.as_str())
        .bind(&item.before)
        .bind(&item.after)
        .execute(&mut *tx)
        .await?;
    }

    sqlx::query(
        "UPDATE config_versions SET version = version + 1, updated_at = now() WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE change_sets SET status = 'applied', applied_at = now(), updated_at = now() \
          WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let rollback_of: Option<Uuid> = row.get("rollback_of");
    if let Some(original) = rollback_of {
        sqlx::query(
            "UPDATE change_sets SET status = 'rolled_back', updated_at = now() WHERE id = $1",
        )
        .bind(original)
        .execute(&mut *tx)
        .await?;
    }
    let conversation: Option<Uuid> = row.get("conversation_id");
    if let Some(conversation) = conversation {
        complete_conversation(&mut tx, tenant_id, conversation, correlation_id).await?;
    }
    let action = if rollback_of.is_some() {
        "change_set.rolled_back"
    } else {
        "change_set.applied"
    };
    let mut event = AuditEvent::new(
        tenant_id,
        Actor::System,
        action,
        "change_set",
        id.to_string(),
        json!({ "operations": operations.len(), "rollback_of": rollback_of }),
    );
    event.correlation_id = Some(correlation_id.to_string());
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(ApplyOutcome::Applied {
        operations: operations.len(),
    })
}

/// Runs one operation's SQL. Table and column names come from [`Kind::table`], never from
/// input; values are bound.
async fn execute(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    operation: &Operation,
    key: &Map<String, Value>,
    after: Option<&Value>,
) -> Result<(), JobError> {
    let table = operation.kind.table();
    let (condition, key_values) = key_condition(table, key, 2);
    let mut row = after.cloned().unwrap_or(Value::Null);
    if let Value::Object(map) = &mut row {
        map.insert("tenant_id".to_string(), json!(tenant_id));
    }
    let sql = match operation.action {
        Action::Create => format!(
            "INSERT INTO {name} SELECT * FROM jsonb_populate_record(NULL::{name}, $1)",
            name = table.name
        ),
        Action::Update => {
            let columns = table.data.join(", ");
            format!(
                "UPDATE {name} t SET ({columns}) = (SELECT {columns} FROM \
                 jsonb_populate_record(NULL::{name}, $1)) WHERE t.tenant_id = $2 AND {condition}",
                name = table.name,
                condition = key_condition(table, key, 3).0,
            )
        }
        Action::Delete => format!(
            "DELETE FROM {name} t WHERE t.tenant_id = $1 AND {condition}",
            name = table.name
        ),
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    query = match operation.action {
        Action::Create => query.bind(row),
        Action::Update => query.bind(row).bind(tenant_id),
        Action::Delete => query.bind(tenant_id),
    };
    for value in key_values {
        query = query.bind(value);
    }
    let affected = query.execute(conn).await?.rows_affected();
    if affected != 1 {
        return Err(JobError::permanent(format!(
            "{} {} of {} affected {affected} rows instead of 1",
            operation.action.as_str(),
            operation.kind.as_str(),
            Value::Object(key.clone())
        )));
    }
    Ok(())
}

/// Handler of [`super::APPLY_KIND`].
pub struct ApplyHandler;

#[async_trait::async_trait]
impl JobHandler for ApplyHandler {
    /// Idempotent: `apply` runs only while the change set is `applying`, checked under a row
    /// lock in the same transaction that marks it `applied`, so a second delivery does nothing.
    async fn run(&self, job: &JobContext, args: Value) -> Result<(), JobError> {
        let id: Uuid = args
            .get("change_set_id")
            .and_then(Value::as_str)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                JobError::permanent(format!("apply job {} has no change_set_id", job.job_id))
            })?;
        let tenant_id = job.tenant_id.ok_or_else(|| {
            JobError::permanent(format!("apply job {} has no tenant", job.job_id))
        })?;
        match apply(&job.pool, tenant_id, id, &job.correlation_id).await {
            Ok(outcome) => {
                tracing::info!(change_set_id = %id, ?outcome, "change set apply finished");
                Ok(())
            }
            Err(error) if error.class == crate::jobs::ErrorClass::Permanent => {
                // Nothing was applied (the transaction rolled back). Hand the change set back to
                // its requester, who can apply it again once the configuration allows it.
                release_failed_apply(&job.pool, tenant_id, id, &job.correlation_id, &error).await?;
                Err(error)
            }
            Err(error) => Err(error),
        }
    }
}

/// Moves a change set whose apply failed for good from `applying` back to `approved`, with an
/// audit entry naming the error.
async fn release_failed_apply(
    pool: &sqlx::PgPool,
    tenant_id: Uuid,
    id: Uuid,
    correlation_id: &str,
    error: &JobError,
) -> Result<(), JobError> {
    let mut tx = pool.begin().await?;
    let released = sqlx::query(
        "UPDATE change_sets SET status = 'approved', updated_at = now() \
          WHERE id = $1 AND tenant_id = $2 AND status = 'applying'",
    )
    .bind(id)
    .bind(tenant_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if released == 1 {
        let mut event = AuditEvent::new(
            tenant_id,
            Actor::System,
            "change_set.apply_failed",
            "change_set",
            id.to_string(),
            json!({ "error": crate::jobs::sanitize::sanitize_text(&error.to_string()) }),
        );
        event.correlation_id = Some(correlation_id.to_string());
        audit::record(&mut tx, &event).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Completes the conversation the change set came from, through the state machine, when it
/// waits for its proposal. A conversation in any other state (cancelled meanwhile, say) keeps
/// its state: the change set was approved on its own merits.
async fn complete_conversation(
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    conversation: Uuid,
    correlation_id: &str,
) -> Result<(), JobError> {
    let waiting: Option<bool> = sqlx::query_scalar(
        "SELECT state = 'awaiting_user_approval' FROM conversation_sessions \
          WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(conversation)
    .fetch_optional(&mut *conn)
    .await?;
    if waiting != Some(true) {
        return Ok(());
    }
    crate::conversations::lifecycle::apply_event(
        conn,
        tenant_id,
        crate::ids::ConversationId(conversation),
        crate::conversations::state::Event::Apply,
        None,
        &crate::conversations::lifecycle::MoveBy::system(correlation_id),
        json!({ "reason": "its change set was applied" }),
    )
    .await
    .map_err(|error| JobError::new(crate::jobs::ErrorClass::Database, error.to_string()))?;
    Ok(())
}
