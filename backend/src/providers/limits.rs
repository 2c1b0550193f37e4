//! Per-provider rate limits and the per-tenant monthly token budget, counted in PostgreSQL.
//!
//! Requests and tokens are counted in one row per provider and minute. A call is admitted while
//! its minute is under both limits, and its tokens are added once it returns, because a call's
//! token count is known only then. So concurrent callers can overshoot the token limit by the
//! tokens of the calls in flight. A provider that answers 429 gets a cooldown until its
//! `Retry-After` (or [`DEFAULT_COOLDOWN`] without one), during which no request is sent to it.

use std::time::Duration;

use sqlx::{PgPool, Row};
use time::OffsetDateTime;

use super::settings::RateLimits;
use super::ProviderKind;
use crate::ids::TenantId;

/// Wait after a 429 that came without a valid `Retry-After`: one rate-limit window.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(60);

/// Maximum cooldown taken from a `Retry-After`, so that a wrong header cannot block a provider
/// for days.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(60 * 60);

/// The rate limiter's decision about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateDecision {
    /// The call may go; its tokens are added to the window that starts at `window_start`.
    Allowed {
        /// The minute the call was counted in.
        window_start: OffsetDateTime,
    },
    /// This minute's requests or tokens are used up.
    Exhausted {
        /// `requests per minute` or `tokens per minute`.
        limit: &'static str,
        /// When the next minute starts.
        resets_at: OffsetDateTime,
    },
    /// The provider answered 429 and asked to wait until `until`.
    CoolingDown {
        /// End of the wait.
        until: OffsetDateTime,
    },
}

/// Counts one request to `provider` when its cooldown is over and this minute is under both
/// limits.
pub async fn reserve(
    pool: &PgPool,
    provider: ProviderKind,
    limits: &RateLimits,
) -> Result<RateDecision, sqlx::Error> {
    let cooldown: Option<OffsetDateTime> = sqlx::query_scalar(
        "SELECT until FROM provider_cooldowns WHERE provider = $1 AND until > now()",
    )
    .bind(provider.as_str())
    .fetch_optional(pool)
    .await?;
    if let Some(until) = cooldown {
        return Ok(RateDecision::CoolingDown { until });
    }

    // The conditional update makes the check and the count one atomic step, so two processes
    // cannot both take the last request of a minute.
    let admitted = sqlx::query(
        "INSERT INTO provider_rate_windows AS w (provider, window_start, requests, tokens) \
         VALUES ($1, date_trunc('minute', now()), 1, 0) \
         ON CONFLICT (provider, window_start) DO UPDATE SET requests = w.requests + 1 \
          WHERE ($2 = 0 OR w.requests < $2) AND ($3 = 0 OR w.tokens < $3) \
         RETURNING window_start, (xmax = 0) AS inserted",
    )
    .bind(provider.as_str())
    .bind(i64::from(limits.requests_per_minute))
    .bind(i64::try_from(limits.tokens_per_minute).unwrap_or(i64::MAX))
    .fetch_optional(pool)
    .await?;

    if let Some(row) = admitted {
        if row.get::<bool, _>("inserted") {
            sqlx::query(
                "DELETE FROM provider_rate_windows \
                  WHERE provider = $1 AND window_start < now() - interval '1 hour'",
            )
            .bind(provider.as_str())
            .execute(pool)
            .await?;
        }
        return Ok(RateDecision::Allowed {
            window_start: row.get("window_start"),
        });
    }

    let row = sqlx::query(
        "SELECT requests, tokens, window_start + interval '1 minute' AS resets_at \
           FROM provider_rate_windows \
          WHERE provider = $1 AND window_start = date_trunc('minute', now())",
    )
    .bind(provider.as_str())
    .fetch_one(pool)
    .await?;
    let requests: i32 = row.get("requests");
    let limit = if limits.requests_per_minute > 0
        && i64::from(requests) >= i64::from(limits.requests_per_minute)
    {
        "requests per minute"
    } else {
        "tokens per minute"
    };
    Ok(RateDecision::Exhausted {
        limit,
        resets_at: row.get("resets_at"),
    })
}

/// Adds a finished call's tokens, and `extra_requests` requests made without their own
/// reservation (the repair request), to the window the call was admitted in.
pub async fn add_usage(
    pool: &PgPool,
    provider: ProviderKind,
    window_start: OffsetDateTime,
    tokens: u64,
    extra_requests: u32,
) -> Result<(), sqlx::Error> {
    if tokens == 0 && extra_requests == 0 {
        return Ok(());
    }
    sqlx::query(
        "UPDATE provider_rate_windows SET tokens = tokens + $3, requests = requests + $4 \
          WHERE provider = $1 AND window_start = $2",
    )
    .bind(provider.as_str())
    .bind(window_start)
    .bind(i64::try_from(tokens).unwrap_or(i64::MAX))
    .bind(i32::try_from(extra_requests).unwrap_or(i32::MAX))
    .execute(pool)
    .await?;
    Ok(())
}

/// Blocks `provider` for `wait` (capped at [`MAX_COOLDOWN`]) after a 429; returns the end of the
/// cooldown. A longer cooldown already stored is kept.
pub async fn cool_down(
    pool: &PgPool,
    provider: ProviderKind,
    wait: Option<Duration>,
    reason: &str,
) -> Result<OffsetDateTime, sqlx::Error> {
    let wait = wait.unwrap_or(DEFAULT_COOLDOWN).min(MAX_COOLDOWN);
    let reason: String = reason.chars().take(1000).collect();
    sqlx::query_scalar(
        "INSERT INTO provider_cooldowns AS c (provider, until, reason) \
         VALUES ($1, now() + make_interval(secs => $2), $3) \
         ON CONFLICT (provider) DO UPDATE \
            SET until = GREATEST(c.until, EXCLUDED.until), reason = EXCLUDED.reason \
         RETURNING until",
    )
    .bind(provider.as_str())
    .bind(wait.as_secs_f64())
    .bind(reason)
    .fetch_one(pool)
    .await
}

/// A tenant's use of model providers in the current calendar month (UTC).
#[derive(Debug, Clone, PartialEq)]
pub struct MonthUsage {
    /// The month, `YYYY-MM`.
    pub month: String,
    /// Input plus output tokens.
    pub tokens: u64,
    /// Cost of the calls whose model has a price, in US dollars.
    pub cost_usd: f64,
    /// Calls whose model has no price, so their cost is missing from `cost_usd`.
    pub unpriced_calls: u64,
}

/// Sums the tenant's recorded calls of the current calendar month (UTC).
pub async fn month_usage(pool: &PgPool, tenant: TenantId) -> Result<MonthUsage, sqlx::Error> {
    let row = sqlx::query(
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM') AS month, \
                coalesce(sum(input_tokens::bigint + output_tokens), 0)::bigint AS tokens, \
                coalesce(sum(cost_usd), 0)::float8 AS cost_usd, \
                count(*) FILTER (WHERE cost_usd IS NULL AND provider <> 'offline') AS unpriced \
           FROM provider_calls \
          WHERE tenant_id = $1 \
            AND created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    )
    .bind(tenant.0)
    .fetch_one(pool)
    .await?;
    Ok(MonthUsage {
        month: row.get("month"),
        tokens: u64::try_from(row.get::<i64, _>("tokens")).unwrap_or(0),
        cost_usd: row.get("cost_usd"),
        unpriced_calls: u64::try_from(row.get::<i64, _>("unpriced")).unwrap_or(0),
    })
}
