//! The numbers of the providers page and `GET /api/v1/providers`: per provider of the chain its
//! breaker for the tenant, calls, errors and latency over the last hour, and the tenant's budget
//! use this month.

use serde::Serialize;
use sqlx::{PgPool, Row};
use time::OffsetDateTime;

use super::breaker::{self, BreakerState};
use super::gateway::Gateway;
use super::limits;
use super::ProviderKind;
use crate::ids::TenantId;

/// Errors listed per provider in [`ProviderStatus::recent_errors`].
pub const RECENT_ERRORS: i64 = 5;

/// Every provider of the chain and the tenant's budget use.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProvidersOverview {
    /// The chain in order, `offline` last.
    pub providers: Vec<ProviderStatus>,
    /// Token and cost use of the tenant this month.
    pub budget: BudgetUse,
    /// The database time the numbers were read at.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: OffsetDateTime,
}

/// One provider of the chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderStatus {
    /// `openai_compatible`, `anthropic` or `offline`.
    pub provider: String,
    /// The configured chat model.
    pub model: String,
    /// The caller's tenant's breaker; absent for `offline`, which has none.
    pub breaker: Option<BreakerView>,
    /// Calls of the last hour.
    pub last_hour: HourStats,
    /// The last hour in five-minute buckets, oldest first.
    pub series: Vec<Bucket>,
    /// The newest failed calls of the last hour, newest first.
    pub recent_errors: Vec<RecentError>,
}

/// The state of a breaker as the page shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BreakerView {
    /// `closed`, `open`, or `half_open` (a probe runs or the open period is over, so the next
    /// call probes).
    pub state: BreakerState,
    /// When the breaker last opened.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub opened_at: Option<OffsetDateTime>,
    /// When an open breaker lets the next probe through.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub reopens_at: Option<OffsetDateTime>,
    /// Failures counted inside the failure window.
    pub recent_failures: u32,
}

/// Calls of one provider in the last hour.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct HourStats {
    /// Requests recorded, repair requests included.
    pub calls: i64,
    /// Requests whose outcome was not `ok`.
    pub errors: i64,
    /// Median latency in milliseconds; absent without calls.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency in milliseconds.
    pub p95_ms: Option<f64>,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: Option<f64>,
}

/// Calls of one provider in one five-minute bucket.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    /// Start of the bucket.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub start: OffsetDateTime,
    /// Requests recorded.
    pub calls: i64,
    /// Requests whose outcome was not `ok`.
    pub errors: i64,
    /// Median latency in milliseconds; absent without calls.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency in milliseconds.
    pub p95_ms: Option<f64>,
}

/// One failed call.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecentError {
    /// When the call was recorded.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The error class.
    pub outcome: String,
    /// The error sentence, without keys.
    pub error: String,
}

/// The tenant's use of model providers this month.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetUse {
    /// The month, `YYYY-MM` (UTC).
    pub month: String,
    /// Input plus output tokens used.
    pub tokens: u64,
    /// Cost of the calls whose model has a price, in US dollars.
    pub cost_usd: f64,
    /// Calls without a price, missing from `cost_usd`.
    pub unpriced_calls: u64,
    /// The monthly token budget; 0 means unlimited.
    pub limit_tokens: u64,
    /// Tokens used as a percentage of the budget; absent when unlimited.
    pub used_percent: Option<f64>,
}

/// Reads the overview for `tenant` over the gateway's chain.
pub async fn overview(
    gateway: &Gateway,
    tenant: TenantId,
) -> Result<ProvidersOverview, sqlx::Error> {
    let pool = gateway.pool();
    let breaker_settings = gateway.policy().breaker;
    let mut providers = Vec::new();
    let mut generated_at = OffsetDateTime::now_utc();
    for (kind, model) in gateway.chat_models() {
        let breaker = if kind == ProviderKind::Offline {
            None
        } else {
            let (stored, now) = breaker::read(pool, tenant, kind).await?;
            generated_at = now;
            let window_start = now - breaker_settings.failure_window;
            let reopened =
                stored.state == BreakerState::Open && stored.reopens_at.is_some_and(|at| at <= now);
            Some(BreakerView {
                state: if reopened {
                    BreakerState::HalfOpen
                } else {
                    stored.state
                },
                opened_at: stored.opened_at,
                reopens_at: stored.reopens_at,
                recent_failures: stored
                    .failures
                    .iter()
                    .filter(|at| **at > window_start)
                    .count() as u32,
            })
        };
        providers.push(ProviderStatus {
            provider: kind.as_str().to_string(),
            model,
            breaker,
            last_hour: hour_stats(pool, tenant, kind).await?,
            series: series(pool, tenant, kind).await?,
            recent_errors: recent_errors(pool, tenant, kind).await?,
        });
    }

    let usage = limits::month_usage(pool, tenant).await?;
    let limit = gateway.policy().monthly_token_budget;
    Ok(ProvidersOverview {
        providers,
        budget: BudgetUse {
            month: usage.month,
            tokens: usage.tokens,
            cost_usd: usage.cost_usd,
            unpriced_calls: usage.unpriced_calls,
            limit_tokens: limit,
            used_percent: (limit > 0).then(|| usage.tokens as f64 * 100.0 / limit as f64),
        },
        generated_at,
    })
}

async fn hour_stats(
    pool: &PgPool,
    tenant: TenantId,
    kind: ProviderKind,
) -> Result<HourStats, sqlx::Error> {
    let row = sqlx::query(
        "SELECT count(*) AS calls, count(*) FILTER (WHERE outcome <> 'ok') AS errors, \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50, \
                percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95, \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99 \
           FROM provider_calls \
          WHERE tenant_id = $1 AND provider = $2 AND created_at > now() - interval '1 hour'",
    )
    .bind(tenant.0)
    .bind(kind.as_str())
    .fetch_one(pool)
    .await?;
    Ok(HourStats {
        calls: row.get("calls"),
        errors: row.get("errors"),
        p50_ms: row.get("p50"),
        p95_ms: row.get("p95"),
        p99_ms: row.get("p99"),
    })
}

/// Reads twelve five-minute buckets ending with the current one, which is still filling.
async fn series(
    pool: &PgPool,
    tenant: TenantId,
    kind: ProviderKind,
) -> Result<Vec<Bucket>, sqlx::Error> {
    let rows = sqlx::query(
        "WITH buckets AS ( \
             SELECT generate_series(current - interval '55 minutes', current, \
                                    interval '5 minutes') AS start \
               FROM (SELECT date_bin('5 minutes', now(), TIMESTAMPTZ '2000-01-01 00:00:00+00') \
                            AS current) AS now_bucket) \
         SELECT b.start, count(c.id) AS calls, \
                count(c.id) FILTER (WHERE c.outcome <> 'ok') AS errors, \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY c.latency_ms) AS p50, \
                percentile_cont(0.95) WITHIN GROUP (ORDER BY c.latency_ms) AS p95 \
           FROM buckets b \
           LEFT JOIN provider_calls c \
                  ON c.tenant_id = $1 AND c.provider = $2 \
                 AND c.created_at >= b.start AND c.created_at < b.start + interval '5 minutes' \
          GROUP BY b.start ORDER BY b.start",
    )
    .bind(tenant.0)
    .bind(kind.as_str())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| Bucket {
            start: row.get("start"),
            calls: row.get("calls"),
            errors: row.get("errors"),
            p50_ms: row.get("p50"),
            p95_ms: row.get("p95"),
        })
        .collect())
}

async fn recent_errors(
    pool: &PgPool,
    tenant: TenantId,
    kind: ProviderKind,
) -> Result<Vec<RecentError>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT created_at, outcome, coalesce(error, '') AS error FROM provider_calls \
          WHERE tenant_id = $1 AND provider = $2 AND outcome <> 'ok' \
            AND created_at > now() - interval '1 hour' \
          ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(tenant.0)
    .bind(kind.as_str())
    .bind(RECENT_ERRORS)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| RecentError {
            at: row.get("created_at"),
            outcome: row.get("outcome"),
            error: row.get("error"),
        })
        .collect())
}
