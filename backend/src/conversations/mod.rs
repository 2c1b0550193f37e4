//! Conversation sessions: one per user and site at a time.
//!
//! This module stores the session records. [`facts`] contains the typed facts a conversation
//! collects, the offline extractor that reads them from messages and the topic checklist that
//! picks the next question. [`state`] is the state machine, [`lifecycle`] applies it to stored
//! sessions, and [`messages`] stores the chat and replies to it with the turn job.

pub mod facts;
pub mod lifecycle;
pub mod messages;
pub mod state;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::accounts::{Principal, Scope};
use crate::http::ApiError;
use crate::ids::{ConversationId, UserId};

/// The states a conversation moves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// Created; no question asked yet.
    Started,
    /// Questions and answers are under way.
    InProgress,
    /// The maker, checker and consensus are working.
    GeneratingRecommendations,
    /// A proposal waits for the manager.
    AwaitingUserApproval,
    /// The proposal's change set was applied.
    Completed,
    /// The manager cancelled, or the session went stale.
    Cancelled,
    /// An unrecoverable failure or an escalation.
    Error,
}

/// Kind of conversation: a new site or changes to an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationType {
    /// Set up a site that does not exist yet.
    NewSite,
    /// Change the configuration of an existing site.
    UpdateSite,
}

impl ConversationType {
    fn as_str(self) -> &'static str {
        match self {
            Self::NewSite => "new_site",
            Self::UpdateSite => "update_site",
        }
    }
}

/// A conversation as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Conversation {
    /// The conversation's id.
    #[schema(value_type = String, format = Uuid)]
    pub id: ConversationId,
    /// The user who started it.
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    /// The site it configures.
    pub site_code: String,
    /// `new_site` or `update_site`.
    pub conversation_type: String,
    /// The current state.
    pub state: String,
    /// Facts collected so far.
    pub collected_data: serde_json::Value,
    /// Optimistic concurrency version.
    pub version: i32,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
}

/// Parses a site code: 1-32 characters of uppercase letters, digits, `_` or `-`, starting with a
/// letter or digit. Lowercase input is uppercased.
pub fn parse_site_code(raw: &str) -> Result<String, ApiError> {
    let code = raw.trim().to_uppercase();
    let valid = (1..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && code
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if valid {
        Ok(code)
    } else {
        Err(ApiError::invalid(
            "site_code",
            raw,
            "site_code must be 1-32 letters, digits, '_' or '-', such as WH-01",
        ))
    }
}

/// The selected columns; a constant, so interpolating it into SQL is safe.
const COLUMNS: &str =
    "id, user_id, site_code, conversation_type, state, collected_data, version, created_at";

/// Starts a conversation for the caller, or returns 409 with the id of their active one for
/// the same site.
pub async fn start(
    pool: &PgPool,
    principal: &Principal,
    site_code: &str,
    kind: ConversationType,
) -> Result<Conversation, ApiError> {
    start_with(
        pool,
        principal,
        site_code,
        kind,
        &lifecycle::ConversationSettings::default(),
    )
    .await
}

/// Starts a conversation like [`start`], first cancelling the caller's active conversation for
/// the same site when it has been idle longer than `settings.idle_timeout`.
pub async fn start_with(
    pool: &PgPool,
    principal: &Principal,
    site_code: &str,
    kind: ConversationType,
    settings: &lifecycle::ConversationSettings,
) -> Result<Conversation, ApiError> {
    let site_code = parse_site_code(site_code)?;
    let mut tx = pool.begin().await?;
    lifecycle::cancel_stale_for(&mut tx, principal, &site_code, settings.idle_timeout).await?;
    let inserted = sqlx::query_as::<_, Conversation>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO conversation_sessions (id, tenant_id, user_id, site_code, conversation_type, state)
         VALUES ($1, $2, $3, $4, $5, 'started')
         ON CONFLICT DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(ConversationId::new())
    .bind(principal.tenant_id)
    .bind(principal.user_id)
    .bind(&site_code)
    .bind(kind.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(conversation) = inserted {
        let event = crate::audit::AuditEvent::new(
            principal.tenant_id.0,
            crate::audit::Actor::User {
                id: principal.user_id.0,
                email: principal.email.clone(),
            },
            "conversation.started",
            "conversation",
            conversation.id.0.to_string(),
            serde_json::json!({ "site_code": site_code, "state": "started" }),
        );
        crate::audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        tracing::info!(conversation_id = %conversation.id, site_code, "conversation started");
        return Ok(conversation);
    }
    drop(tx);

    let active: Option<ConversationId> = sqlx::query_scalar(
        "SELECT id FROM conversation_sessions
         WHERE tenant_id = $1 AND user_id = $2 AND site_code = $3
           AND state IN ('started', 'in_progress', 'generating_recommendations',
                         'awaiting_user_approval')",
    )
    .bind(principal.tenant_id)
    .bind(principal.user_id)
    .bind(&site_code)
    .fetch_optional(pool)
    .await?;
    Err(ApiError::Conflict {
        message: format!(
            "you already have an active conversation for site {site_code}; resume it or cancel it first"
        ),
        existing_id: active.map(|id| id.to_string()),
    })
}

/// Finds a conversation of the scoped tenant; another tenant's returns 404.
pub async fn get(
    pool: &PgPool,
    scope: Scope,
    id: ConversationId,
) -> Result<Conversation, ApiError> {
    sqlx::query_as::<_, Conversation>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM conversation_sessions WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(scope.tenant_id())
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no conversation {id} in this tenant")))
}

/// Lists the caller's own conversations, active ones first, then the newest; at most `limit`.
pub async fn list_own(
    pool: &PgPool,
    principal: &Principal,
    limit: i64,
) -> Result<Vec<Conversation>, ApiError> {
    let rows = sqlx::query_as::<_, Conversation>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM conversation_sessions
          WHERE tenant_id = $1 AND user_id = $2
          ORDER BY state IN ('started', 'in_progress', 'generating_recommendations',
                             'awaiting_user_approval') DESC, created_at DESC
          LIMIT $3"
    )))
    .bind(principal.tenant_id)
    .bind(principal.user_id)
    .bind(limit.clamp(1, 200))
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Finds a conversation of `tenant_id` inside the caller's transaction, for jobs that have a
/// tenant id rather than a signed-in caller.
pub async fn find(
    conn: &mut sqlx::PgConnection,
    tenant_id: uuid::Uuid,
    id: ConversationId,
) -> Result<Option<Conversation>, sqlx::Error> {
    sqlx::query_as::<_, Conversation>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM conversation_sessions WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_code_is_uppercased() {
        assert_eq!(parse_site_code(" wh-01 ").unwrap(), "WH-01");
    }

    #[test]
    fn site_code_rejects_bad_input() {
        for raw in ["", "-WH", "WH 01", "WH/01", &"A".repeat(33)] {
            assert!(parse_site_code(raw).is_err(), "accepted {raw:?}");
        }
    }
}
