//! `GET /api/v1/providers`: the model provider chain with breakers, calls, latency and budget
//! use of the caller's tenant (admins only).

use axum::extract::State;
use axum::Json;
use backend::http::{AdminRole, ApiError, Authorized};
use backend::providers::overview;
use backend::AppState;

pub use backend::providers::breaker::BreakerState;
pub use backend::providers::overview::{
    BreakerView, Bucket, BudgetUse, HourStats, ProviderStatus, ProvidersOverview, RecentError,
};

/// Per provider of the chain: the breaker for the caller's tenant, calls, errors and latency
/// percentiles of the last hour with five-minute buckets, the newest errors, and the tenant's
/// token and cost use this month.
#[utoipa::path(get, path = "/api/v1/providers", responses(
    (status = 200, body = ProvidersOverview),
    (status = 401, body = backend::http::ErrorBody),
    (status = 403, body = backend::http::ErrorBody),
))]
pub async fn list(
    caller: Authorized<AdminRole>,
    State(state): State<AppState>,
) -> Result<Json<ProvidersOverview>, ApiError> {
    let tenant = caller.scope().tenant_id();
    let overview = overview::overview(&state.providers, tenant).await?;
    Ok(Json(overview))
}
