//! Moving stored conversations between states: every move locks the row, checks it with
//! [`transition`](super::state::transition), bumps the version and writes the audit trail in
//! one transaction. Cancel, escalate and the upkeep's clean-up of stale and stuck sessions are
//! built on it.

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::state::{transition, Event};
use super::{get, Conversation, ConversationState};
use crate::accounts::Principal;
use crate::audit::{self, Actor, AuditEvent};
use crate::http::ApiError;
use crate::ids::ConversationId;
use crate::jobs::{self, NewJob};

/// Kind of the job that posts an escalation to the alert webhook.
pub const ESCALATION_ALERT_KIND: &str = "alert.conversation_escalated";

/// Time limits of conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationSettings {
    /// An active conversation without activity for this long is stale: the upkeep cancels it,
    /// and so does a new start for the same user and site.
    pub idle_timeout: Duration,
    /// A conversation generating recommendations for this long moves to error.
    pub generating_timeout: Duration,
}

impl Default for ConversationSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            generating_timeout: Duration::from_secs(60 * 60),
        }
    }
}

/// The result of a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// The state before the move.
    pub from: ConversationState,
    /// The state after it.
    pub to: ConversationState,
    /// The version after it.
    pub version: i32,
}

/// The actor of a move and the correlation id that the audit trail records.
#[derive(Debug, Clone)]
pub struct MoveBy {
    /// The actor recorded in the audit trail.
    pub actor: Actor,
    /// The request's correlation id, or the job's.
    pub correlation_id: Option<String>,
}

impl MoveBy {
    /// Describes a move by the signed-in user `principal`.
    pub fn user(principal: &Principal, correlation_id: Option<String>) -> Self {
        Self {
            actor: Actor::User {
                id: principal.user_id.0,
                email: principal.email.clone(),
            },
            correlation_id,
        }
    }

    /// Describes a move by a job or a schedule.
    pub fn system(correlation_id: impl Into<String>) -> Self {
        Self {
            actor: Actor::System,
            correlation_id: Some(correlation_id.into()),
        }
    }
}

/// Applies `event` to conversation `id` of `tenant_id` inside the caller's transaction. With
/// `expected_version`, a conversation changed since the caller read it fails with 409, and
/// a move the state machine does not allow fails with 409 naming the state and the event.
pub async fn apply_event(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: ConversationId,
    event: Event,
    expected_version: Option<i32>,
    by: &MoveBy,
    detail: Value,
) -> Result<Moved, ApiError> {
    let row = sqlx::query(
        "SELECT state, version FROM conversation_sessions \
          WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no conversation {id} in this tenant")))?;
    let stored: String = row.get("state");
    let version: i32 = row.get("version");
    let from = ConversationState::parse(&stored)
        .ok_or_else(|| anyhow::anyhow!("conversation {id} has unknown state {stored}"))?;

    if let Some(expected) = expected_version.filter(|expected| *expected != version) {
        return Err(conflict(format!(
            "conversation {id} is at version {version}, not {expected}: it changed since you \
             read it; reload it and try again"
        )));
    }
    let to = transition(from, event).map_err(|refused| {
        conflict(format!(
            "{refused}; the conversation is {}",
            describe(refused.from)
        ))
    })?;

    sqlx::query(
        "UPDATE conversation_sessions SET state = $3, version = version + 1, updated_at = now() \
          WHERE id = $1 AND version = $2",
    )
    .bind(id)
    .bind(version)
    .bind(to.as_str())
    .execute(&mut *conn)
    .await?;

    let mut detail = match detail {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    detail.insert("from".to_string(), json!(from.as_str()));
    detail.insert("to".to_string(), json!(to.as_str()));
    let event_row = AuditEvent::new(
        tenant_id,
        by.actor.clone(),
        &format!("conversation.{}", event.as_str()),
        "conversation",
        id.0.to_string(),
        Value::Object(detail),
    )
    .client(None, None, by.correlation_id.clone());
    audit::record(conn, &event_row).await?;
    tracing::info!(conversation_id = %id, from = from.as_str(), to = to.as_str(), event = event.as_str(), "conversation moved");
    Ok(Moved {
        from,
        to,
        version: version + 1,
    })
}

/// Explains a state to a user who tried a move it does not allow.
fn describe(state: ConversationState) -> &'static str {
    match state {
        ConversationState::Started => "waiting for its first message",
        ConversationState::InProgress => "collecting facts",
        ConversationState::GeneratingRecommendations => {
            "generating recommendations; wait for the run to finish"
        }
        ConversationState::AwaitingUserApproval => "waiting for you to submit its proposal",
        ConversationState::Completed => "completed; start a new conversation for more changes",
        ConversationState::Cancelled => "cancelled; start a new conversation",
        ConversationState::Error => "in error; start a new conversation",
    }
}

fn conflict(message: String) -> ApiError {
    ApiError::Conflict {
        message,
        existing_id: None,
    }
}

/// Returns the conversation if `principal` started it: only its manager may write to it.
/// Another user of the tenant gets 403, another tenant's id 404.
pub async fn owned(
    pool: &PgPool,
    principal: &Principal,
    id: ConversationId,
) -> Result<Conversation, ApiError> {
    let conversation = get(pool, principal.scope(), id).await?;
    if conversation.user_id != principal.user_id {
        return Err(ApiError::Forbidden(format!(
            "only the manager who started conversation {id} may change it"
        )));
    }
    Ok(conversation)
}

/// Cancels an active conversation of the caller.
pub async fn cancel(
    pool: &PgPool,
    principal: &Principal,
    id: ConversationId,
    expected_version: Option<i32>,
    correlation_id: &str,
) -> Result<Conversation, ApiError> {
    owned(pool, principal, id).await?;
    let mut tx = pool.begin().await?;
    apply_event(
        &mut tx,
        principal.tenant_id.0,
        id,
        Event::Cancel,
        expected_version,
        &MoveBy::user(principal, Some(correlation_id.to_string())),
        json!({ "reason": "cancelled by the manager" }),
    )
    .await?;
    tx.commit().await?;
    get(pool, principal.scope(), id).await
}

/// Moves an active conversation of the caller to error as an escalation: every approver of the
/// tenant gets an in-app notification, and the alert webhook job is queued (it posts only when
/// a webhook is configured).
pub async fn escalate(
    pool: &PgPool,
    principal: &Principal,
    id: ConversationId,
    reason: &str,
    correlation_id: &str,
) -> Result<Conversation, ApiError> {
    let conversation = owned(pool, principal, id).await?;
    let mut tx = pool.begin().await?;
    let by = MoveBy::user(principal, Some(correlation_id.to_string()));
    escalate_in(
        &mut tx,
        principal.tenant_id.0,
        &conversation,
        reason,
        &by,
        correlation_id,
    )
    .await?;
    tx.commit().await?;
    get(pool, principal.scope(), id).await
}

/// Escalates inside the caller's transaction; the consensus calls it too when it decides that
/// a person must look at a run.
pub async fn escalate_in(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    conversation: &Conversation,
    reason: &str,
    by: &MoveBy,
    correlation_id: &str,
) -> Result<Moved, ApiError> {
    let moved = apply_event(
        conn,
        tenant_id,
        conversation.id,
        Event::Fail,
        None,
        by,
        json!({ "reason": reason, "escalated": true }),
    )
    .await?;
    let message = format!(
        "Conversation about site {} was escalated: {reason}",
        conversation.site_code
    );
    let notified = sqlx::query(
        "INSERT INTO notifications (id, tenant_id, user_id, kind, subject_type, subject_id, message) \
         SELECT gen_random_uuid(), $1, u.id, 'conversation.escalated', 'conversation', $2, $3 \
           FROM users u \
          WHERE u.tenant_id = $1 AND 'approver' = ANY (u.roles) AND u.disabled_at IS NULL \
         ON CONFLICT (user_id, kind, subject_id) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(conversation.id.0.to_string())
    .bind(&message)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let job = NewJob::new(
        ESCALATION_ALERT_KIND,
        json!({ "conversation_id": conversation.id, "reason": reason }),
        correlation_id,
    )
    .tenant(tenant_id)
    .idempotency_key(conversation.id.0.to_string());
    jobs::enqueue(conn, job).await?;
    tracing::warn!(conversation_id = %conversation.id, notified, "conversation escalated to approvers");
    Ok(moved)
}

/// Counts of what [`expire`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Stale conversations cancelled.
    pub cancelled: u64,
    /// Conversations stuck generating recommendations, moved to error.
    pub failed: u64,
}

/// Cancels active conversations idle past the idle timeout, and moves conversations generating
/// recommendations past the generating timeout to error with their running run marked failed.
/// Each row moves in its own transaction through [`apply_event`], so a second run finds nothing
/// left to do.
pub async fn expire(pool: &PgPool, settings: &ConversationSettings) -> Result<Expired, ApiError> {
    let mut expired = Expired::default();
    let stale: Vec<(Uuid, ConversationId)> = sqlx::query_as(
        "SELECT tenant_id, id FROM conversation_sessions \
          WHERE state IN ('started', 'in_progress', 'awaiting_user_approval') \
            AND updated_at < now() - make_interval(secs => $1)",
    )
    .bind(settings.idle_timeout.as_secs_f64())
    .fetch_all(pool)
    .await?;
    for (tenant_id, id) in stale {
        let reason = "no activity for longer than the idle timeout";
        if move_if_still(pool, tenant_id, id, Event::Cancel, settings, reason).await? {
            expired.cancelled += 1;
        }
    }

    let stuck: Vec<(Uuid, ConversationId)> = sqlx::query_as(
        "SELECT tenant_id, id FROM conversation_sessions \
          WHERE state = 'generating_recommendations' \
            AND updated_at < now() - make_interval(secs => $1)",
    )
    .bind(settings.generating_timeout.as_secs_f64())
    .fetch_all(pool)
    .await?;
    for (tenant_id, id) in stuck {
        let reason = "recommendations took longer than the generating timeout";
        if move_if_still(pool, tenant_id, id, Event::Fail, settings, reason).await? {
            expired.failed += 1;
        }
    }
    Ok(expired)
}

/// Moves one conversation found by [`expire`] if it is still past its limit under the row
/// lock, since a message or a finished run may have touched it in between.
async fn move_if_still(
    pool: &PgPool,
    tenant_id: Uuid,
    id: ConversationId,
    event: Event,
    settings: &ConversationSettings,
    reason: &str,
) -> Result<bool, ApiError> {
    let mut tx = pool.begin().await?;
    let (state, limit) = match event {
        Event::Cancel => (None, settings.idle_timeout),
        _ => (
            Some("generating_recommendations"),
            settings.generating_timeout,
        ),
    };
    let still: Option<String> = sqlx::query_scalar(
        "SELECT state FROM conversation_sessions \
          WHERE id = $1 AND updated_at < now() - make_interval(secs => $2) \
            AND state IN ('started', 'in_progress', 'generating_recommendations', \
                          'awaiting_user_approval') \
          FOR UPDATE",
    )
    .bind(id)
    .bind(limit.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = still else {
        return Ok(false);
    };
    if state.is_some_and(|wanted| wanted != current)
        || (event == Event::Cancel && current == "generating_recommendations")
    {
        return Ok(false);
    }
    let by = MoveBy::system(format!("upkeep-{}", Uuid::now_v7()));
    apply_event(
        &mut tx,
        tenant_id,
        id,
        event,
        None,
        &by,
        json!({ "reason": reason }),
    )
    .await?;
    if event == Event::Fail {
        sqlx::query(
            "UPDATE recommendation_runs SET status = 'failed', error = $2, updated_at = now(), \
                    finished_at = now() \
              WHERE conversation_id = $1 AND status = 'running'",
        )
        .bind(id)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Cancels the caller's active conversation for `site_code` when it is stale, so that a new
/// start succeeds instead of failing with 409. Runs inside the start's transaction.
pub async fn cancel_stale_for(
    conn: &mut PgConnection,
    principal: &Principal,
    site_code: &str,
    idle_timeout: Duration,
) -> Result<bool, ApiError> {
    let stale: Option<ConversationId> = sqlx::query_scalar(
        "SELECT id FROM conversation_sessions \
          WHERE tenant_id = $1 AND user_id = $2 AND site_code = $3 \
            AND state IN ('started', 'in_progress', 'awaiting_user_approval') \
            AND updated_at < now() - make_interval(secs => $4) \
          FOR UPDATE",
    )
    .bind(principal.tenant_id)
    .bind(principal.user_id)
    .bind(site_code)
    .bind(idle_timeout.as_secs_f64())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = stale else {
        return Ok(false);
    };
    apply_event(
        conn,
        principal.tenant_id.0,
        id,
        Event::Cancel,
        None,
        &MoveBy::user(principal, None),
        json!({ "reason": "stale when a new conversation started" }),
    )
    .await?;
    Ok(true)
}
