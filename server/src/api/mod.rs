//! REST API v1: thin handlers that authenticate, parse at the edge and call the backend.

pub mod changes;
pub mod chat;
pub mod dead_letters;
pub mod knowledge;
pub mod providers;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backend::accounts::{self, Principal, Role, UserSummary};
use backend::conversations::{self, Conversation, ConversationType};
use backend::http::{AdminRole, AnyRole, ApiError, ApiJson, Authorized, ErrorBody, ManagerRole};
use backend::ids::{ConversationId, UserId};
use backend::AppState;
use serde::Deserialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Builds the upload route, mounted under `/api/v1` with the document size limit instead of
/// the JSON limit of [`router`].
pub fn upload_router() -> Router<AppState> {
    Router::new().route("/knowledge/documents", post(knowledge::submit))
}

/// Builds the API routes, mounted under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/openapi.json", get(openapi))
        .route("/users/{id}", get(get_user))
        .route("/conversations", post(start_conversation))
        .route("/conversations/{id}", get(get_conversation))
        .route(
            "/conversations/{id}/messages",
            post(chat::post_message).get(chat::list_messages),
        )
        .route("/conversations/{id}/events", get(chat::events))
        .route("/conversations/{id}/cancel", post(chat::cancel))
        .route("/conversations/{id}/escalate", post(chat::escalate))
        .route("/conversations/{id}/recommendations", post(chat::recommend))
        .route("/recommendation-runs/{id}", get(chat::show_run))
        .route("/notifications", get(chat::notifications))
        .route("/notifications/{id}/read", post(chat::read_notification))
        .route("/sites/{code}", get(changes::site))
        .route("/change-sets", post(changes::create).get(changes::list))
        .route("/change-sets/{id}", get(changes::show).put(changes::edit))
        .route("/change-sets/{id}/decisions", post(changes::decide))
        .route("/change-sets/{id}/apply", post(changes::apply))
        .route("/change-sets/{id}/rollback", post(changes::rollback))
        .route("/dead-letters", get(dead_letters::list))
        .route("/dead-letters/stats", get(dead_letters::stats))
        .route("/dead-letters/retry", post(dead_letters::retry))
        .route("/dead-letters/{id}", get(dead_letters::show))
        .route("/dead-letters/{id}/discard", post(dead_letters::discard))
        .route("/knowledge/url-check", post(knowledge::url_check))
        .route("/knowledge/documents", get(knowledge::list))
        .route("/knowledge/documents/{id}", get(knowledge::show))
        .route("/knowledge/documents/{id}/chunks", get(knowledge::chunks))
        .route(
            "/knowledge/documents/{id}/reviews",
            post(knowledge::add_review),
        )
        .route("/knowledge/documents/{id}/retire", post(knowledge::retire))
        .route("/knowledge/search", get(knowledge::search))
        .route("/webhooks/knowledge", post(knowledge::webhook))
        .route("/providers", get(providers::list))
        .route("/audit", get(dead_letters::audit_list))
        .route("/audit/verify", get(dead_letters::audit_verify))
        .fallback(unknown_route)
}

/// The OpenAPI description of this API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Siteline API", version = "1", description = "Conversational facility onboarding."),
    paths(
        me, get_user, start_conversation, get_conversation,
        chat::post_message, chat::list_messages, chat::events,
        chat::cancel, chat::escalate, chat::recommend,
        chat::show_run, chat::notifications, chat::read_notification,
        dead_letters::list, dead_letters::stats, dead_letters::show, dead_letters::retry,
        dead_letters::discard, dead_letters::audit_list, dead_letters::audit_verify,
        changes::site, changes::create, changes::list, changes::show, changes::edit,
        changes::decide, changes::apply, changes::rollback, knowledge::url_check,
        knowledge::submit, knowledge::list, knowledge::show, knowledge::chunks,
        knowledge::add_review, knowledge::retire, knowledge::search, knowledge::webhook,
        providers::list,
    ),
    components(schemas(
        ErrorBody, Principal, Role, UserSummary, Conversation, StartConversation, ConversationType,
        chat::NewMessage, chat::CancelRequest, chat::EscalateRequest,
        chat::RunQueued, backend::conversations::messages::Message,
        backend::conversations::messages::Posted, backend::recommendations::runs::RunView,
        backend::recommendations::runs::ItemView, backend::recommendations::runs::StageView,
        backend::recommendations::runs::Citation, backend::notifications::Notification,
        dead_letters::DeadLetterPage, dead_letters::RetryRequest, dead_letters::DiscardRequest,
        changes::NewChangeSet, changes::EditChangeSet, changes::DecisionRequest,
        changes::ApplyQueued, changes::RollbackConflicts, knowledge::UrlCheck,
        knowledge::UrlVerdict, knowledge::NewUrlDocument, knowledge::DocumentPage,
        knowledge::WebhookNotice, backend::knowledge::store::Submitted,
        backend::knowledge::store::DocumentView, backend::knowledge::store::ReviewView,
        backend::knowledge::store::ChunkView, backend::knowledge::review::NewReview,
        backend::knowledge::review::ReviewDecision, backend::knowledge::review::ReviewOutcome,
        backend::knowledge::search::SearchHit, backend::knowledge::Authority,
        providers::ProvidersOverview, providers::ProviderStatus, providers::BreakerView,
        providers::HourStats, providers::Bucket, providers::RecentError, providers::BudgetUse,
        providers::BreakerState,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []), ("session" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new(crate::router::SESSION_COOKIE),
            )),
        );
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn unknown_route() -> ApiError {
    ApiError::NotFound("no such API route; see /api/v1/openapi.json".to_string())
}

/// The caller: user, tenant and roles.
#[utoipa::path(get, path = "/api/v1/me", responses(
    (status = 200, body = Principal),
    (status = 401, body = ErrorBody),
))]
async fn me(caller: Authorized<AnyRole>) -> Json<Principal> {
    Json(caller.principal().clone())
}

/// One user of the caller's tenant (admins only).
#[utoipa::path(get, path = "/api/v1/users/{id}", params(("id" = String, Path, description = "User id (UUID)")), responses(
    (status = 200, body = UserSummary),
    (status = 400, body = ErrorBody),
    (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
async fn get_user(
    caller: Authorized<AdminRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<UserSummary>, ApiError> {
    let id = UserId::parse("id", &id)?;
    let user = accounts::find_user(&state.pool, caller.scope(), id).await?;
    Ok(Json(user))
}

/// Body of `POST /api/v1/conversations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartConversation {
    /// The site to set up, e.g. WH-01.
    pub site_code: String,
    /// `new_site` or `update_site`.
    pub conversation_type: ConversationType,
    /// When the caller already has an active conversation for the site, return it (200)
    /// instead of failing with 409.
    #[serde(default)]
    pub resume: bool,
}

/// Starts a conversation about a site (managers only). A 409 names the active one, unless the
/// body sets `resume`, which returns the active one with 200.
#[utoipa::path(post, path = "/api/v1/conversations", request_body = StartConversation, responses(
    (status = 201, body = Conversation),
    (status = 200, body = Conversation, description = "the active conversation, resumed"),
    (status = 400, body = ErrorBody),
    (status = 403, body = ErrorBody),
    (status = 409, body = ErrorBody),
    (status = 413, body = ErrorBody),
))]
async fn start_conversation(
    caller: Authorized<ManagerRole>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartConversation>,
) -> Result<Response, ApiError> {
    let started = conversations::start_with(
        &state.pool,
        caller.principal(),
        &body.site_code,
        body.conversation_type,
        &state.settings.conversations,
    )
    .await;
    match started {
        Ok(conversation) => Ok((StatusCode::CREATED, Json(conversation)).into_response()),
        Err(ApiError::Conflict {
            existing_id: Some(existing),
            ..
        }) if body.resume => {
            let id = ConversationId::parse("existing_id", &existing)?;
            let conversation = conversations::get(&state.pool, caller.scope(), id).await?;
            Ok((StatusCode::OK, Json(conversation)).into_response())
        }
        Err(error) => Err(error),
    }
}

/// One conversation of the caller's tenant. Every role may read it: approvers review the
/// proposals that come out of conversations, and admins support their users.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", params(("id" = String, Path, description = "Conversation id (UUID)")), responses(
    (status = 200, body = Conversation),
    (status = 400, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
async fn get_conversation(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    let id = ConversationId::parse("id", &id)?;
    let conversation = conversations::get(&state.pool, caller.scope(), id).await?;
    Ok(Json(conversation))
}
