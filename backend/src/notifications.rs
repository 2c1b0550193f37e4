//! In-app notifications: messages for one user about something that needs them, such as a
//! conversation escalated to the tenant's approvers.

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::Principal;
use crate::http::ApiError;

/// Most notifications one list returns.
pub const MAX_LIST: i64 = 100;

/// One notification of the caller.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    /// Notification id.
    pub id: Uuid,
    /// The event, e.g. `conversation.escalated`.
    pub kind: String,
    /// The kind of thing it is about, e.g. `conversation`.
    pub subject_type: String,
    /// The id of that thing.
    pub subject_id: String,
    /// The sentence to show.
    pub message: String,
    /// When it was written.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When the user marked it read; `None` while unread.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub read_at: Option<OffsetDateTime>,
}

/// Lists the caller's unread notifications, newest first; at most `limit` (1 to [`MAX_LIST`]).
pub async fn unread(
    pool: &PgPool,
    principal: &Principal,
    limit: i64,
) -> Result<Vec<Notification>, ApiError> {
    let rows = sqlx::query_as::<_, Notification>(
        "SELECT id, kind, subject_type, subject_id, message, created_at, read_at \
           FROM notifications \
          WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL \
          ORDER BY created_at DESC LIMIT $3",
    )
    .bind(principal.tenant_id)
    .bind(principal.user_id)
    .bind(limit.clamp(1, MAX_LIST))
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Marks one of the caller's notifications read; another user's id returns 404.
pub async fn mark_read(pool: &PgPool, principal: &Principal, id: Uuid) -> Result<(), ApiError> {
    let updated = sqlx::query(
        "UPDATE notifications SET read_at = coalesce(read_at, now()) \
          WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
    )
    .bind(principal.tenant_id)
    .bind(principal.user_id)
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(ApiError::NotFound(format!("no notification {id} for you")));
    }
    Ok(())
}
