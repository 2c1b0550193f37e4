//! REST routes of conversation turns, state moves, the event stream and recommendation runs.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use backend::accounts::Scope;
use backend::conversations::messages::{self, Message, Posted};
use backend::conversations::{self, lifecycle, Conversation, ConversationState};
use backend::http::{AnyRole, ApiError, ApiJson, Authorized, CorrelationId, ManagerRole};
use backend::ids::{parse_uuid, ConversationId};
use backend::notifications::Notification;
use backend::recommendations::runs::{self, RunView};
use backend::AppState;
use futures::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// How often the event stream looks for new messages and state changes.
const EVENT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How often the event stream sends a comment to keep proxies from closing it.
const EVENT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Body of `POST /api/v1/conversations/{id}/messages`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// The message, at most 4,000 characters.
    pub text: String,
}

/// Posts a message of the conversation's manager; a job writes the assistant's reply.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", request_body = NewMessage,
    params(("id" = String, Path, description = "Conversation id (UUID)")), responses(
    (status = 202, body = Posted),
    (status = 400, body = backend::http::ErrorBody),
    (status = 403, body = backend::http::ErrorBody),
    (status = 404, body = backend::http::ErrorBody),
    (status = 409, body = backend::http::ErrorBody),
    (status = 413, body = backend::http::ErrorBody),
))]
pub async fn post_message(
    caller: Authorized<ManagerRole>,
    State(state): State<AppState>,
    correlation: CorrelationId,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewMessage>,
) -> Result<Response, ApiError> {
    let id = ConversationId::parse("id", &id)?;
    let posted = messages::post(
        &state.pool,
        caller.principal(),
        id,
        &body.text,
        &correlation.0,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(posted)).into_response())
}

/// Query of `GET /api/v1/conversations/{id}/messages`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// Page size, 1-500 (default 500).
    pub limit: Option<i64>,
    /// The last message id of the previous page.
    pub cursor: Option<String>,
}

/// Lists the messages of a conversation in order.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages",
    params(("id" = String, Path, description = "Conversation id (UUID)"), MessageQuery), responses(
    (status = 200, body = Vec<Message>),
    (status = 400, body = backend::http::ErrorBody),
    (status = 404, body = backend::http::ErrorBody),
))]
pub async fn list_messages(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<MessageQuery>,
) -> Result<Json<Vec<Message>>, ApiError> {
    let id = ConversationId::parse("id", &id)?;
    let cursor = query
        .cursor
        .as_deref()
        .filter(|text| !text.is_empty())
        .map(|text| parse_uuid("cursor", text))
        .transpose()?;
    let limit = query.limit.unwrap_or(messages::MAX_PAGE);
    if !(1..=messages::MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            &limit.to_string(),
            format!("limit must be between 1 and {}", messages::MAX_PAGE),
        ));
    }
    let page = messages::list(&state.pool, caller.scope(), id, cursor, limit).await?;
    Ok(Json(page))
}

/// Body of `POST /api/v1/conversations/{id}/cancel`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The version the caller last read; when the conversation is newer, the request fails with 409.
    pub version: Option<i32>,
}

/// Cancels an active conversation of the caller.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/cancel", request_body = CancelRequest,
    params(("id" = String, Path, description = "Conversation id (UUID)")), responses(
    (status = 200, body = Conversation),
    (status = 403, body = backend::http::ErrorBody),
    (status = 404, body = backend::http::ErrorBody),
    (status = 409, body = backend::http::ErrorBody),
))]
pub async fn cancel(
    caller: Authorized<ManagerRole>,
    State(state): State<AppState>,
    correlation: CorrelationId,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Conversation>, ApiError> {
    let id = ConversationId::parse("id", &id)?;
    let version = optional_body::<CancelRequest>(&body)?.version;
    let conversation =
        lifecycle::cancel(&state.pool, caller.principal(), id, version, &correlation.0).await?;
    Ok(Json(conversation))
}

/// Body of `POST /api/v1/conversations/{id}/escalate`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateRequest {
    /// The reason a person must look at the conversation, at most 500 characters.
    pub reason: Option<String>,
}

/// Escalates an active conversation of the caller to the tenant's approvers; it moves to error.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/escalate", request_body = EscalateRequest,
    params(("id" = String, Path, description = "Conversation id (UUID)")), responses(
    (status = 200, body = Conversation),
    (status = 400, body = backend::http::ErrorBody),
    (status = 403, body = backend::http::ErrorBody),
    (status = 404, body = backend::http::ErrorBody),
    (status = 409, body = backend::http::ErrorBody),
))]
pub async fn escalate(
    caller: Authorized<ManagerRole>,
    State(state): State<AppState>,
    correlation: CorrelationId,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Conversation>, ApiError> {
    let id = ConversationId::parse("id", &id)?;
    let reason = optional_body::<EscalateRequest>(&body)?
        .reason
        .map(|reason| reason.trim().to_string())
        .filter(|reason| !reason.is_empty())
        .unwrap_or_else(|| "the manager asked for help".to_string());
    if reason.chars().count() > 500 {
        return Err(ApiError::invalid(
            "reason",
            &reason,
            "reason must have at most 500 characters",
        ));
    }
    let conversation =
        lifecycle::escalate(&state.pool, caller.principal(), id, &reason, &correlation.0).await?;
    Ok(Json(conversation))
}

/// The response to a recommendation request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunQueued {
    /// The run; follow it at `/api/v1/recommendation-runs/{run_id}`.
    pub run_id: Uuid,
}

/// Starts a recommendation run for the caller's conversation.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/recommendations",
    params(("id" = String, Path, description = "Conversation id (UUID)")), responses(
    (status = 202, body = RunQueued),
    (status = 403, body = backend::http::ErrorBody),
    (status = 404, body = backend::http::ErrorBody),
    (status = 409, body = backend::http::ErrorBody),
))]
pub async fn recommend(
    caller: Authorized<ManagerRole>,
    State(state): State<AppState>,
    correlation: CorrelationId,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = ConversationId::parse("id", &id)?;
    let run_id = runs::request(&state.pool, caller.principal(), id, &correlation.0).await?;
    Ok((StatusCode::ACCEPTED, Json(RunQueued { run_id })).into_response())
}

/// One recommendation run: stages, decision and items with citations.
#[utoipa::path(get, path = "/api/v1/recommendation-runs/{id}",
    params(("id" = String, Path, description = "Run id (UUID)")), responses(
    (status = 200, body = RunView),
    (status = 400, body = backend::http::ErrorBody),
    (status = 404, body = backend::http::ErrorBody),
))]
pub async fn show_run(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(runs::get(&state.pool, caller.scope(), id).await?))
}

/// Streams a conversation as server-sent events: `state` when its state or version changes,
/// `message` for each message, and `run` when its latest recommendation run moves. The stream
/// ends after a closed conversation's last events.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/events",
    params(("id" = String, Path, description = "Conversation id (UUID)")), responses(
    (status = 200, description = "text/event-stream of state, message and run events"),
    (status = 400, body = backend::http::ErrorBody),
    (status = 404, body = backend::http::ErrorBody),
))]
pub async fn events(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = ConversationId::parse("id", &id)?;
    conversations::get(&state.pool, caller.scope(), id).await?;
    let watcher = Watcher {
        pool: state.pool.clone(),
        scope: caller.scope(),
        id,
        version: None,
        sent: HashSet::new(),
        run: None,
        pending: VecDeque::new(),
        first: true,
        finished: false,
    };
    let stream = futures::stream::unfold(watcher, |mut watcher| async move {
        loop {
            if let Some(event) = watcher.pending.pop_front() {
                return Some((Ok(event), watcher));
            }
            if watcher.finished {
                return None;
            }
            if !watcher.first {
                tokio::time::sleep(EVENT_POLL_INTERVAL).await;
            }
            watcher.first = false;
            if let Err(error) = watcher.poll().await {
                tracing::warn!(conversation_id = %watcher.id, error = ?error, "event stream stopped");
                return None;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(EVENT_KEEP_ALIVE)))
}

/// The state of one event stream: what it has sent so far and what waits to be sent.
struct Watcher {
    pool: PgPool,
    scope: Scope,
    id: ConversationId,
    version: Option<i32>,
    sent: HashSet<Uuid>,
    run: Option<(Uuid, String, String, i16)>,
    pending: VecDeque<Event>,
    first: bool,
    finished: bool,
}

impl Watcher {
    /// Queues the events for what changed since the last poll. Every message is compared by
    /// id rather than by a cursor, because a message can commit after a later-stamped one.
    async fn poll(&mut self) -> Result<(), ApiError> {
        let conversation = conversations::get(&self.pool, self.scope, self.id).await?;
        let messages =
            messages::list(&self.pool, self.scope, self.id, None, messages::MAX_PAGE).await?;
        for message in messages {
            if self.sent.insert(message.id) {
                self.pending.push_back(json_event("message", &message));
            }
        }

        let run: Option<(Uuid, String, String, i16)> = sqlx::query_as(
            "SELECT id, stage, status, progress FROM recommendation_runs \
              WHERE tenant_id = $1 AND conversation_id = $2 \
              ORDER BY created_at DESC LIMIT 1",
        )
        .bind(self.scope.tenant_id())
        .bind(self.id)
        .fetch_optional(&self.pool)
        .await?;
        if run.is_some() && run != self.run {
            if let Some((run_id, stage, status, progress)) = &run {
                self.pending.push_back(json_event(
                    "run",
                    &json!({ "run_id": run_id, "stage": stage, "status": status, "progress": progress }),
                ));
            }
            self.run = run;
        }

        if self.version != Some(conversation.version) {
            self.version = Some(conversation.version);
            self.pending.push_back(json_event(
                "state",
                &json!({ "state": conversation.state, "version": conversation.version }),
            ));
        }
        let active =
            ConversationState::parse(&conversation.state).is_some_and(ConversationState::is_active);
        self.finished = !active;
        Ok(())
    }
}

/// Lists the caller's unread notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", responses(
    (status = 200, body = Vec<Notification>),
))]
pub async fn notifications(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let list = backend::notifications::unread(
        &state.pool,
        caller.principal(),
        backend::notifications::MAX_LIST,
    )
    .await?;
    Ok(Json(list))
}

/// Marks one of the caller's notifications read.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read",
    params(("id" = String, Path, description = "Notification id (UUID)")), responses(
    (status = 204),
    (status = 400, body = backend::http::ErrorBody),
    (status = 404, body = backend::http::ErrorBody),
))]
pub async fn read_notification(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_uuid("id", &id)?;
    backend::notifications::mark_read(&state.pool, caller.principal(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Parses an optional JSON body: an empty body is the default request.
fn optional_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|error| ApiError::Invalid {
        message: format!("invalid JSON body: {error}"),
        field: None,
        value: None,
    })
}

/// Builds an event named `name` with `data` as JSON.
fn json_event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name).data("{}"))
}
