//! Recommendation runs as stored: requesting one, reading it with its items and citations, and
//! turning accepted items into a change set. The stage jobs live in [`super::stages`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::stages::Stage;
use super::RetrievedChunk;
use crate::accounts::{Principal, Scope};
use crate::changes::store::{self, Caller, ChangeSet};
use crate::changes::Operation;
use crate::conversations::facts::CollectedData;
use crate::conversations::lifecycle::{apply_event, owned, MoveBy};
use crate::conversations::state::Event;
use crate::http::ApiError;
use crate::ids::ConversationId;
use crate::jobs::{self, NewJob};

/// Maximum characters of a chunk quoted in a citation.
pub const MAX_QUOTE_CHARS: usize = 600;

/// A retrieved chunk as the run stores it: what the maker and checker read, plus the section
/// path that citations show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredChunk {
    /// The chunk.
    #[serde(flatten)]
    pub chunk: RetrievedChunk,
    /// Headings above the chunk, outermost first.
    pub section_path: Vec<String>,
}

/// A citation of a proposal item, with what a reader needs to check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Citation {
    /// The cited chunk.
    pub chunk_id: Uuid,
    /// The document version of the chunk.
    pub document_id: Uuid,
    /// The document's title.
    pub document_title: String,
    /// Headings above the chunk, outermost first.
    pub section_path: Vec<String>,
    /// The chunk's text, cut to [`MAX_QUOTE_CHARS`] characters.
    pub quote: String,
}

impl Citation {
    /// Builds the citation of a stored chunk.
    pub fn of(stored: &StoredChunk) -> Self {
        let quote: String = stored.chunk.text.chars().take(MAX_QUOTE_CHARS).collect();
        Self {
            chunk_id: stored.chunk.chunk_id,
            document_id: stored.chunk.document_id,
            document_title: stored.chunk.document_title.clone(),
            section_path: stored.section_path.clone(),
            quote,
        }
    }
}

/// One proposal item of a run.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemView {
    /// The item's id, which `accepted_item_ids` names.
    pub id: Uuid,
    /// Position in apply order, from 0.
    pub ordinal: i32,
    /// The operation.
    pub operation: Operation,
    /// The maker's reason.
    pub rationale: String,
    /// Confidence after the checker's adjustment, in [0, 1].
    pub confidence: f64,
    /// Citations that survived the consensus.
    pub citations: Vec<Citation>,
    /// The checker's findings: `{category, passed, message}`.
    #[schema(value_type = Vec<Object>)]
    pub findings: Value,
}

/// One stage of a run and how far it got.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageView {
    /// retrieve, maker, checker, consensus or persist.
    pub name: String,
    /// done, running, pending or failed.
    pub status: String,
}

/// A recommendation run with its stages, decision and items.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunView {
    /// The run's id.
    pub id: Uuid,
    /// The conversation it recommends for.
    pub conversation_id: Uuid,
    /// The stage that runs next, or done.
    pub stage: String,
    /// running, succeeded or failed.
    pub status: String,
    /// Percent done.
    pub progress: i16,
    /// Each stage in order.
    pub stages: Vec<StageView>,
    /// approve, modify or escalate, once the consensus ran.
    pub decision: Option<String>,
    /// The proposal's confidence, in [0, 1].
    pub confidence: Option<f64>,
    /// The consensus terms: coverage, agreement, freshness, policy.
    #[schema(value_type = Option<Object>)]
    pub terms: Option<Value>,
    /// Citations removed because the checker found them unsupported.
    pub removed_unsupported: Option<i32>,
    /// Citations removed because they named no retrieved chunk.
    pub removed_unknown: Option<i32>,
    /// Reasons that escalated the run, empty when none.
    pub escalation_reasons: Vec<String>,
    /// Operations the checker marked invalid: `{index, operation, errors}`.
    #[schema(value_type = Vec<Object>)]
    pub dropped: Value,
    /// The reason the run failed.
    pub error: Option<String>,
    /// The source of the operations: a model and its provider, or the offline rules and the
    /// reason (for example an exhausted token budget). Absent until the maker stage ran.
    pub maker_source: Option<String>,
    /// The source of the checker's verdicts, in the same form.
    pub checker_source: Option<String>,
    /// The job of the current or last stage.
    pub job_id: Option<Uuid>,
    /// When it was requested.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
    /// The proposal, in apply order; empty until the run succeeds.
    pub items: Vec<ItemView>,
}

/// Starts a recommendation run for the caller's conversation: the conversation moves to
/// generating_recommendations and the retrieve job is queued, in one transaction.
pub async fn request(
    pool: &PgPool,
    principal: &Principal,
    id: ConversationId,
    correlation_id: &str,
) -> Result<Uuid, ApiError> {
    let conversation = owned(pool, principal, id).await?;
    let facts: CollectedData = serde_json::from_value(conversation.collected_data.clone())
        .map_err(|error| {
            anyhow::anyhow!("conversation {id} has invalid collected_data: {error}")
        })?;
    let mut missing = Vec::new();
    if facts.site_kind.is_none() {
        missing.push("the kind of site");
    }
    if facts.hours.is_none() {
        missing.push("the operating hours");
    }
    if facts.security_level.is_none() {
        missing.push("the security level");
    }
    if !missing.is_empty() && conversation.state == "in_progress" {
        return Err(ApiError::Conflict {
            message: format!(
                "cannot recommend yet: the conversation has no {}; answer the assistant's \
                 questions first",
                missing.join(", ")
            ),
            existing_id: None,
        });
    }

    let mut tx = pool.begin().await?;
    apply_event(
        &mut tx,
        principal.tenant_id.0,
        id,
        Event::Recommend,
        None,
        &MoveBy::user(principal, Some(correlation_id.to_string())),
        json!({}),
    )
    .await?;
    let run_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO recommendation_runs (id, tenant_id, conversation_id, requested_by, stage, \
                                          status) \
         VALUES ($1, $2, $3, $4, 'retrieve', 'running')",
    )
    .bind(run_id)
    .bind(principal.tenant_id)
    .bind(id)
    .bind(principal.user_id)
    .execute(&mut *tx)
    .await?;
    let job = stage_job(
        Stage::Retrieve,
        run_id,
        principal.tenant_id.0,
        correlation_id,
    );
    let enqueued = jobs::enqueue(&mut tx, job).await?;
    sqlx::query("UPDATE recommendation_runs SET job_id = $2 WHERE id = $1")
        .bind(run_id)
        .bind(enqueued.job_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(conversation_id = %id, %run_id, "recommendation run requested");
    Ok(run_id)
}

/// Builds the job of `stage` for run `run_id`, keyed on both so each stage is queued once.
pub fn stage_job(stage: Stage, run_id: Uuid, tenant_id: Uuid, correlation_id: &str) -> NewJob {
    NewJob::new(
        stage.job_kind(),
        json!({ "run_id": run_id }),
        correlation_id.to_string(),
    )
    .tenant(tenant_id)
    .idempotency_key(format!("{run_id}:{}", stage.as_str()))
}

/// Reads a run of the scoped tenant with its items; another tenant's id returns 404.
pub async fn get(pool: &PgPool, scope: Scope, run_id: Uuid) -> Result<RunView, ApiError> {
    let row = sqlx::query(
        "SELECT id, conversation_id, stage, status, progress, decision, confidence, terms, \
                removed_unsupported, removed_unknown, consensus, error, maker_source, \
                checker_source, job_id, created_at, finished_at \
           FROM recommendation_runs WHERE tenant_id = $1 AND id = $2",
    )
    .bind(scope.tenant_id())
    .bind(run_id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no recommendation run {run_id} in this tenant")))?;

    let stage: String = row.get("stage");
    let status: String = row.get("status");
    let consensus: Option<Value> = row.get("consensus");
    let escalation_reasons = consensus
        .as_ref()
        .and_then(|value| value.get("escalation_reasons"))
        .and_then(|value| serde_json::from_value(value.clone()).ok())
        .unwrap_or_default();
    let dropped = consensus
        .as_ref()
        .and_then(|value| value.get("dropped").cloned())
        .unwrap_or_else(|| json!([]));

    let items = sqlx::query(
        "SELECT id, ordinal, operation, rationale, confidence, citations, findings \
           FROM recommendation_items WHERE run_id = $1 ORDER BY ordinal",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|item| -> Result<ItemView, ApiError> {
        Ok(ItemView {
            id: item.get("id"),
            ordinal: item.get("ordinal"),
            operation: serde_json::from_value(item.get("operation"))
                .map_err(|error| anyhow::anyhow!("stored operation is invalid: {error}"))?,
            rationale: item.get("rationale"),
            confidence: item.get("confidence"),
            citations: serde_json::from_value(item.get("citations"))
                .map_err(|error| anyhow::anyhow!("stored citations are invalid: {error}"))?,
            findings: item.get("findings"),
        })
    })
    .collect::<Result<Vec<_>, _>>()?;

    Ok(RunView {
        id: row.get("id"),
        conversation_id: row.get("conversation_id"),
        stages: stage_views(&stage, &status),
        stage,
        status,
        progress: row.get("progress"),
        decision: row.get("decision"),
        confidence: row.get("confidence"),
        terms: row.get("terms"),
        removed_unsupported: row.get("removed_unsupported"),
        removed_unknown: row.get("removed_unknown"),
        escalation_reasons,
        dropped,
        error: row.get("error"),
        maker_source: row.get("maker_source"),
        checker_source: row.get("checker_source"),
        job_id: row.get("job_id"),
        created_at: row.get("created_at"),
        finished_at: row.get("finished_at"),
        items,
    })
}

/// Reads the newest run of a conversation of the scoped tenant, if it has one.
pub async fn latest(
    pool: &PgPool,
    scope: Scope,
    conversation_id: ConversationId,
) -> Result<Option<RunView>, ApiError> {
    let run_id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM recommendation_runs WHERE tenant_id = $1 AND conversation_id = $2 \
          ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(scope.tenant_id())
    .bind(conversation_id)
    .fetch_optional(pool)
    .await?;
    match run_id {
        Some(run_id) => get(pool, scope, run_id).await.map(Some),
        None => Ok(None),
    }
}

/// Returns each stage's status from the run's current stage and status.
fn stage_views(current: &str, status: &str) -> Vec<StageView> {
    let current_index = Stage::CHAIN
        .iter()
        .position(|stage| stage.as_str() == current)
        .unwrap_or(Stage::CHAIN.len());
    Stage::CHAIN
        .iter()
        .enumerate()
        .map(|(index, stage)| {
            let state = match index.cmp(&current_index) {
                std::cmp::Ordering::Less => "done",
                std::cmp::Ordering::Equal if status == "failed" => "failed",
                std::cmp::Ordering::Equal => "running",
                std::cmp::Ordering::Greater => "pending",
            };
            StageView {
                name: stage.as_str().to_string(),
                status: state.to_string(),
            }
        })
        .collect()
}

/// Creates a change set from the accepted items of a finished run, in the run's order. Risk
/// and tier come from the change-set rules; the items' lowest confidence feeds the risk's
/// low-confidence term. Only the manager who requested the run may submit it.
pub async fn create_change_set(
    pool: &PgPool,
    caller: &Caller,
    run_id: Uuid,
    accepted_item_ids: &[Uuid],
    title: Option<&str>,
) -> Result<ChangeSet, ApiError> {
    let principal = &caller.principal;
    let run = sqlx::query(
        "SELECT r.status, r.decision, r.requested_by, r.conversation_id, c.site_code \
           FROM recommendation_runs r JOIN conversation_sessions c ON c.id = r.conversation_id \
          WHERE r.tenant_id = $1 AND r.id = $2",
    )
    .bind(principal.tenant_id)
    .bind(run_id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no recommendation run {run_id} in this tenant")))?;
    let requested_by: Uuid = run.get("requested_by");
    if requested_by != principal.user_id.0 {
        return Err(ApiError::Forbidden(format!(
            "only the manager who requested run {run_id} may submit its items"
        )));
    }
    let status: String = run.get("status");
    if status != "succeeded" {
        return Err(ApiError::Conflict {
            message: format!("run {run_id} is {status}; submit items once it has succeeded"),
            existing_id: None,
        });
    }
    let decision: Option<String> = run.get("decision");
    if decision.as_deref() == Some("escalate") {
        return Err(ApiError::Conflict {
            message: format!(
                "run {run_id} was escalated to the approvers; its items cannot be submitted \
                 until a person has looked at it"
            ),
            existing_id: None,
        });
    }

    let accepted: BTreeSet<Uuid> = accepted_item_ids.iter().copied().collect();
    if accepted.is_empty() {
        return Err(ApiError::unprocessable(
            "accepted_item_ids",
            "[]",
            "accepted_item_ids is empty; accept at least one item of the run",
        ));
    }
    let ids: Vec<Uuid> = accepted.iter().copied().collect();
    let rows = sqlx::query(
        "SELECT id, operation, confidence FROM recommendation_items \
          WHERE run_id = $1 AND id = ANY($2) ORDER BY ordinal",
    )
    .bind(run_id)
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let found: BTreeSet<Uuid> = rows.iter().map(|row| row.get::<Uuid, _>("id")).collect();
    if let Some(unknown) = accepted.difference(&found).next() {
        return Err(ApiError::unprocessable(
            "accepted_item_ids",
            &unknown.to_string(),
            format!("item {unknown} is not an item of run {run_id}"),
        ));
    }

    let mut operations = Vec::with_capacity(rows.len());
    let mut min_confidence: f64 = 1.0;
    for row in &rows {
        let operation: Operation = serde_json::from_value(row.get("operation"))
            .map_err(|error| anyhow::anyhow!("stored operation is invalid: {error}"))?;
        operations.push(operation);
        min_confidence = min_confidence.min(row.get::<f64, _>("confidence"));
    }
    let site_code: String = run.get("site_code");
    let default_title = format!(
        "Site {site_code}: {} changes from recommendation run",
        operations.len()
    );
    let title = title.map(str::trim).filter(|title| !title.is_empty());
    let conversation_id: Uuid = run.get("conversation_id");
    store::create(
        pool,
        caller,
        title.unwrap_or(&default_title),
        operations,
        Some(min_confidence.clamp(0.0, 1.0)),
        Some(conversation_id),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_before_current_are_done() {
        let views = stage_views("checker", "running");
        let statuses: Vec<&str> = views.iter().map(|view| view.status.as_str()).collect();
        assert_eq!(statuses, ["done", "done", "running", "pending", "pending"]);
    }

    #[test]
    fn failed_stage_is_marked() {
        let views = stage_views("maker", "failed");
        assert_eq!(views[1].status, "failed");
        assert_eq!(views[0].status, "done");
    }

    #[test]
    fn finished_run_has_every_stage_done() {
        let views = stage_views("done", "succeeded");
        assert!(views.iter().all(|view| view.status == "done"));
    }
}
