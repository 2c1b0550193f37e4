//! REST routes of the dead-letter queue and the audit trail (admins only).

use axum::extract::{Path, Query, State};
use axum::Json;
use backend::audit::{self, AuditEntry, Verification};
use backend::http::{AdminRole, ApiError, ApiJson, Authorized, ClientMeta, CorrelationId};
use backend::ids::parse_uuid;
use backend::jobs::dead_letters::{
    self, ActionContext, DeadLetter, DeadLetterSummary, Filter, RetryReport, Stats,
};
use backend::jobs::ErrorClass;
use backend::AppState;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Query of `GET /api/v1/dead-letters`; all fields optional.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// Job kind, e.g. demo.fail.
    pub kind: Option<String>,
    /// Error class: database, network, model_provider, rate_limited, circuit_open, permanent.
    pub class: Option<String>,
    /// true or false.
    pub critical: Option<String>,
    /// open (default), retried, discarded or all.
    pub status: Option<String>,
    /// Failed on or after this day, YYYY-MM-DD (UTC).
    pub from: Option<String>,
    /// Failed on or before this day, YYYY-MM-DD (UTC).
    pub to: Option<String>,
    /// Text to find in the payload or the error chain.
    pub q: Option<String>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl DeadLetterQuery {
    /// Parses the query into a filter, naming the first invalid parameter.
    pub fn filter(&self) -> Result<Filter, ApiError> {
        let class = self
            .class
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| {
                ErrorClass::parse(text).ok_or_else(|| {
                    ApiError::invalid(
                        "class",
                        text,
                        "unknown error class; use database, network, model_provider, \
                         rate_limited, circuit_open or permanent",
                    )
                })
            })
            .transpose()?;
        let critical = match self.critical.as_deref().filter(|text| !text.is_empty()) {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(ApiError::invalid(
                    "critical",
                    other,
                    "critical must be true or false",
                ))
            }
        };
        let status = match self.status.as_deref().filter(|text| !text.is_empty()) {
            None => None,
            Some(status @ ("open" | "retried" | "discarded" | "all")) => Some(status.to_string()),
            Some(other) => {
                return Err(ApiError::invalid(
                    "status",
                    other,
                    "status must be open, retried, discarded or all",
                ))
            }
        };
        let limit = self
            .limit
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| {
                text.parse::<i64>()
                    .ok()
                    .filter(|limit| (1..=dead_letters::MAX_PAGE).contains(limit))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "limit",
                            text,
                            "limit must be a whole number from 1 to 200",
                        )
                    })
            })
            .transpose()?;
        let cursor = self
            .cursor
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| parse_uuid("cursor", text))
            .transpose()?;
        Ok(Filter {
            kind: self.kind.clone().filter(|kind| !kind.is_empty()),
            class,
            critical,
            status,
            from: parse_day("from", self.from.as_deref())?,
            to: parse_day("to", self.to.as_deref())?,
            search: self.q.clone(),
            cursor,
            limit,
        })
    }
}

fn parse_day(field: &str, text: Option<&str>) -> Result<Option<time::Date>, ApiError> {
    let Some(text) = text.filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, format).map(Some).map_err(|_| {
        ApiError::invalid(field, text, "dates are written YYYY-MM-DD, e.g. 2026-12-04")
    })
}

/// A page of dead letters.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterPage {
    /// Newest first.
    pub items: Vec<DeadLetterSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// Lists the tenant's dead letters, newest first.
#[utoipa::path(get, path = "/api/v1/dead-letters", params(DeadLetterQuery), responses(
    (status = 200, body = DeadLetterPage),
    (status = 400, body = backend::http::ErrorBody),
    (status = 403, body = backend::http::ErrorBody),
))]
pub async fn list(
    caller: Authorized<AdminRole>,
    State(state): State<AppState>,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let filter = query.filter()?;
    let limit = filter.limit.unwrap_or(50);
    let tenant = caller.scope().tenant_id().0;
    let items = dead_letters::list(&state.pool, Some(tenant), &filter).await?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|item| item.id))
        .flatten();
    Ok(Json(DeadLetterPage { items, next_cursor }))
}

/// Counts per kind and class, and the last 7 days.
#[utoipa::path(get, path = "/api/v1/dead-letters/stats", responses(
    (status = 200, body = Stats),
    (status = 403, body = backend::http::ErrorBody),
))]
pub async fn stats(
    caller: Authorized<AdminRole>,
    State(state): State<AppState>,
) -> Result<Json<Stats>, ApiError> {
    let tenant = caller.scope().tenant_id().0;
    Ok(Json(dead_letters::stats(&state.pool, Some(tenant)).await?))
}

/// One dead letter with its error chain, attempts and sanitized payload.
#[utoipa::path(get, path = "/api/v1/dead-letters/{id}", params(("id" = String, Path, description = "Dead letter id (UUID)")), responses(
    (status = 200, body = DeadLetter),
    (status = 400, body = backend::http::ErrorBody),
    (status = 404, body = backend::http::ErrorBody),
))]
pub async fn show(
    caller: Authorized<AdminRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetter>, ApiError> {
    let id = parse_uuid("id", &id)?;
    let tenant = caller.scope().tenant_id().0;
    dead_letters::get(&state.pool, Some(tenant), id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("dead letter {id} not found")))
}

/// Body of `POST /api/v1/dead-letters/retry`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// The selected dead letters (at most 1,000).
    pub ids: Vec<String>,
}

/// Queues the jobs of the selected dead letters again; ids already retried or discarded are
/// reported as skipped, so a repeated submit queues nothing twice.
#[utoipa::path(post, path = "/api/v1/dead-letters/retry", request_body = RetryRequest, responses(
    (status = 200, body = RetryReport),
    (status = 400, body = backend::http::ErrorBody),
    (status = 422, body = backend::http::ErrorBody),
))]
pub async fn retry(
    caller: Authorized<AdminRole>,
    State(state): State<AppState>,
    client: ClientMeta,
    correlation: CorrelationId,
    ApiJson(body): ApiJson<RetryRequest>,
) -> Result<Json<RetryReport>, ApiError> {
    let ids = body
        .ids
        .iter()
        .map(|id| parse_uuid("ids", id))
        .collect::<Result<Vec<_>, _>>()?;
    let context = ActionContext::for_request(caller.principal(), &client, &correlation);
    let tenant = caller.scope().tenant_id().0;
    let report = dead_letters::retry(&state.pool, Some(tenant), &ids, &context).await?;
    Ok(Json(report))
}

/// Body of `POST /api/v1/dead-letters/{id}/discard`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscardRequest {
    /// The reason the job should not run again (1-500 characters).
    pub reason: String,
}

/// Closes an open dead letter without running its job again.
#[utoipa::path(post, path = "/api/v1/dead-letters/{id}/discard", request_body = DiscardRequest, params(("id" = String, Path, description = "Dead letter id (UUID)")), responses(
    (status = 204),
    (status = 404, body = backend::http::ErrorBody),
    (status = 409, body = backend::http::ErrorBody),
    (status = 422, body = backend::http::ErrorBody),
))]
pub async fn discard(
    caller: Authorized<AdminRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientMeta,
    correlation: CorrelationId,
    ApiJson(body): ApiJson<DiscardRequest>,
) -> Result<axum::http::StatusCode, ApiError> {
    let id = parse_uuid("id", &id)?;
    let context = ActionContext::for_request(caller.principal(), &client, &correlation);
    let tenant = caller.scope().tenant_id().0;
    dead_letters::discard(&state.pool, Some(tenant), id, &body.reason, &context).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only events about this subject id.
    pub subject: Option<String>,
    /// Only events by this user id (UUID).
    pub actor: Option<String>,
    /// Page size, 1-500 (default 100).
    pub limit: Option<i64>,
}

/// The tenant's audit trail, newest first.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), responses(
    (status = 200, body = Vec<AuditEntry>),
    (status = 400, body = backend::http::ErrorBody),
))]
pub async fn audit_list(
    caller: Authorized<AdminRole>,
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let actor = query
        .actor
        .as_deref()
        .filter(|text| !text.is_empty())
        .map(|text| parse_uuid("actor", text))
        .transpose()?;
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    let tenant = caller.scope().tenant_id().0;
    let subject = query.subject.as_deref().filter(|text| !text.is_empty());
    Ok(Json(
        audit::list(&state.pool, tenant, subject, actor, limit).await?,
    ))
}

/// Recomputes the tenant's hash chain and names the first broken row.
#[utoipa::path(get, path = "/api/v1/audit/verify", responses(
    (status = 200, body = Verification),
))]
pub async fn audit_verify(
    caller: Authorized<AdminRole>,
    State(state): State<AppState>,
) -> Result<Json<Verification>, ApiError> {
    let tenant = caller.scope().tenant_id().0;
    Ok(Json(audit::verify(&state.pool, tenant).await?))
}
