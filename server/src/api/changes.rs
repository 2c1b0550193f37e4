//! REST routes of the facility configuration and change sets.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use backend::changes::store::{
    self, Caller, ChangeSet, ChangeSetSummary, Decision, RollbackConflict, RollbackOutcome,
};
use backend::changes::Operation;
use backend::facility::{self, SiteConfiguration};
use backend::http::{
    AnyRole, ApiError, ApiJson, ApproverRole, Authorized, ClientMeta, CorrelationId, ManagerRole,
};
use backend::ids::parse_uuid;
use backend::recommendations::runs;
use backend::AppState;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The configuration of one site: every kind keyed to it.
#[utoipa::path(get, path = "/api/v1/sites/{code}", params(("code" = String, Path, description = "Site code, e.g. WH-01")), responses(
    (status = 200, body = SiteConfiguration),
    (status = 404, body = backend::http::ErrorBody),
))]
pub async fn site(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<SiteConfiguration>, ApiError> {
    let tenant = caller.scope().tenant_id().0;
    facility::site_configuration(&state.pool, tenant, &code)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("site {code} not found")))
}

/// Body of `POST /api/v1/change-sets`: either `operations`, or a finished recommendation run
/// and the ids of its accepted items.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChangeSet {
    /// Short title, 1-200 characters; required with `operations`, generated for a run.
    pub title: Option<String>,
    /// Operations in order (at most 200).
    pub operations: Option<Vec<Operation>>,
    /// The maker's lowest confidence (0-1) when the set came from a recommendation.
    pub min_confidence: Option<f64>,
    /// A succeeded recommendation run of the caller.
    pub run_id: Option<String>,
    /// Ids of the run's items to submit; they keep the run's order.
    pub accepted_item_ids: Option<Vec<String>>,
}

/// Creates a change set (managers), from operations or from the accepted items of a
/// recommendation run; risk and tier come from the change-set rules. 422 lists each invalid
/// operation.
#[utoipa::path(post, path = "/api/v1/change-sets", request_body = NewChangeSet, responses(
    (status = 201, body = ChangeSet),
    (status = 400, body = backend::http::ErrorBody),
    (status = 403, body = backend::http::ErrorBody),
    (status = 404, body = backend::http::ErrorBody),
    (status = 409, body = backend::http::ErrorBody),
    (status = 422, body = backend::http::ErrorBody),
))]
pub async fn create(
    caller: Authorized<ManagerRole>,
    State(state): State<AppState>,
    client: ClientMeta,
    correlation: CorrelationId,
    ApiJson(body): ApiJson<NewChangeSet>,
) -> Result<Response, ApiError> {
    let caller = Caller::new(caller.principal(), &client, &correlation);
    let change_set = match (body.run_id, body.operations) {
        (Some(run_id), None) => {
            if body.min_confidence.is_some() {
                return Err(ApiError::invalid(
                    "min_confidence",
                    "",
                    "min_confidence comes from the run's items; leave it out with run_id",
                ));
            }
            let run_id = parse_uuid("run_id", &run_id)?;
            let accepted = body
                .accepted_item_ids
                .unwrap_or_default()
                .iter()
                .map(|id| parse_uuid("accepted_item_ids", id))
                .collect::<Result<Vec<Uuid>, ApiError>>()?;
            runs::create_change_set(
                &state.pool,
                &caller,
                run_id,
                &accepted,
                body.title.as_deref(),
            )
            .await?
        }
        (None, Some(operations)) => {
            if body.accepted_item_ids.is_some() {
                return Err(ApiError::invalid(
                    "accepted_item_ids",
                    "",
                    "accepted_item_ids needs run_id; send either operations or run_id",
                ));
            }
            if let Some(confidence) = body.min_confidence {
                if !(0.0..=1.0).contains(&confidence) {
                    return Err(ApiError::invalid(
                        "min_confidence",
                        &confidence.to_string(),
                        "min_confidence must be between 0 and 1",
                    ));
                }
            }
            store::create(
                &state.pool,
                &caller,
                body.title.as_deref().unwrap_or(""),
                operations,
                body.min_confidence,
                None,
            )
            .await?
        }
        _ => {
            return Err(ApiError::invalid(
                "operations",
                "",
                "send either operations (with a title) or run_id with accepted_item_ids",
            ))
        }
    };
    Ok((StatusCode::CREATED, Json(change_set)).into_response())
}

/// Query of `GET /api/v1/change-sets`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChangeSetQuery {
    /// pending, approved, rejected, expired, applying, applied or rolled_back.
    pub status: Option<String>,
    /// `true` for the caller's own change sets only.
    pub mine: Option<String>,
}

/// Lists the tenant's change sets, newest first.
#[utoipa::path(get, path = "/api/v1/change-sets", params(ChangeSetQuery), responses(
    (status = 200, body = Vec<ChangeSetSummary>),
    (status = 400, body = backend::http::ErrorBody),
))]
pub async fn list(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    Query(query): Query<ChangeSetQuery>,
) -> Result<Json<Vec<ChangeSetSummary>>, ApiError> {
    const STATUSES: [&str; 7] = [
        "pending",
        "approved",
        "rejected",
        "expired",
        "applying",
        "applied",
        "rolled_back",
    ];
    let status = query.status.as_deref().filter(|text| !text.is_empty());
    if let Some(status) = status {
        if !STATUSES.contains(&status) {
            return Err(ApiError::invalid(
                "status",
                status,
                "unknown status; use pending, approved, rejected, expired, applying, applied or \
                 rolled_back",
            ));
        }
    }
    let mine = match query.mine.as_deref() {
        None | Some("") | Some("false") => None,
        Some("true") => Some(caller.principal().user_id.0),
        Some(other) => {
            return Err(ApiError::invalid(
                "mine",
                other,
                "mine must be true or false",
            ))
        }
    };
    let tenant = caller.scope().tenant_id().0;
    Ok(Json(
        store::list(&state.pool, tenant, status, mine, 100).await?,
    ))
}

fn change_set_id(id: &str) -> Result<Uuid, ApiError> {
    parse_uuid("id", id)
}

/// One change set: operations, preview, risk, tier and decisions.
#[utoipa::path(get, path = "/api/v1/change-sets/{id}", params(("id" = String, Path, description = "Change set id (UUID)")), responses(
    (status = 200, body = ChangeSet),
    (status = 404, body = backend::http::ErrorBody),
))]
pub async fn show(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ChangeSet>, ApiError> {
    let tenant = caller.scope().tenant_id().0;
    Ok(Json(
        store::get(&state.pool, tenant, change_set_id(&id)?).await?,
    ))
}

/// Body of `PUT /api/v1/change-sets/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditChangeSet {
    /// The new operations; approvals given so far no longer count.
    pub operations: Vec<Operation>,
}

/// Replaces a pending change set's operations (its requester only).
#[utoipa::path(put, path = "/api/v1/change-sets/{id}", request_body = EditChangeSet, params(("id" = String, Path, description = "Change set id (UUID)")), responses(
    (status = 200, body = ChangeSet),
    (status = 409, body = backend::http::ErrorBody),
    (status = 422, body = backend::http::ErrorBody),
))]
pub async fn edit(
    caller: Authorized<ManagerRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientMeta,
    correlation: CorrelationId,
    ApiJson(body): ApiJson<EditChangeSet>,
) -> Result<Json<ChangeSet>, ApiError> {
    let caller = Caller::new(caller.principal(), &client, &correlation);
    let id = change_set_id(&id)?;
    Ok(Json(
        store::edit(&state.pool, &caller, id, body.operations).await?,
    ))
}

/// Body of `POST /api/v1/change-sets/{id}/decisions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// approve or reject.
    pub decision: Decision,
    /// Optional comment, at most 2,000 characters.
    pub comment: Option<String>,
}

/// Approves or rejects a change set (approvers other than the requester).
#[utoipa::path(post, path = "/api/v1/change-sets/{id}/decisions", request_body = DecisionRequest, params(("id" = String, Path, description = "Change set id (UUID)")), responses(
    (status = 200, body = ChangeSet),
    (status = 403, body = backend::http::ErrorBody),
    (status = 409, body = backend::http::ErrorBody),
))]
pub async fn decide(
    caller: Authorized<ApproverRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientMeta,
    correlation: CorrelationId,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> Result<Json<ChangeSet>, ApiError> {
    let caller = Caller::new(caller.principal(), &client, &correlation);
    let id = change_set_id(&id)?;
    let comment = body
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty());
    Ok(Json(
        store::decide(&state.pool, &caller, id, body.decision, comment).await?,
    ))
}

/// The queued apply job.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApplyQueued {
    /// The job applying the change set.
    pub job_id: Uuid,
}

/// Queues the apply of an approved change set, or of a self-tier one (its requester only).
#[utoipa::path(post, path = "/api/v1/change-sets/{id}/apply", params(("id" = String, Path, description = "Change set id (UUID)")), responses(
    (status = 202, body = ApplyQueued),
    (status = 403, body = backend::http::ErrorBody),
    (status = 409, body = backend::http::ErrorBody),
))]
pub async fn apply(
    caller: Authorized<ManagerRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientMeta,
    correlation: CorrelationId,
) -> Result<Response, ApiError> {
    let caller = Caller::new(caller.principal(), &client, &correlation);
    let job_id = store::request_apply(&state.pool, &caller, change_set_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(ApplyQueued { job_id })).into_response())
}

/// Rows that changed since the apply, which block a rollback.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RollbackConflicts {
    /// A sentence for people.
    pub error: String,
    /// Each changed row with what the apply left and what is there now.
    pub conflicts: Vec<RollbackConflict>,
}

/// Creates the rollback change set of an applied change set; 409 lists rows changed since.
#[utoipa::path(post, path = "/api/v1/change-sets/{id}/rollback", params(("id" = String, Path, description = "Change set id (UUID)")), responses(
    (status = 201, body = ChangeSet),
    (status = 409, body = RollbackConflicts),
))]
pub async fn rollback(
    caller: Authorized<ManagerRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientMeta,
    correlation: CorrelationId,
) -> Result<Response, ApiError> {
    let caller = Caller::new(caller.principal(), &client, &correlation);
    match store::rollback(&state.pool, &caller, change_set_id(&id)?).await? {
        RollbackOutcome::Created { change_set } => {
            Ok((StatusCode::CREATED, Json(*change_set)).into_response())
        }
        RollbackOutcome::Conflicts { conflicts } => {
            let body = RollbackConflicts {
                error: format!(
                    "{} row(s) changed since this change set was applied; nothing was rolled \
                     back. Review the conflicts, then change those rows by hand.",
                    conflicts.len()
                ),
                conflicts,
            };
            Ok((StatusCode::CONFLICT, Json(body)).into_response())
        }
    }
}
