//! The model provider overview for admins, as a server function.
//!
//! Values cross to the browser as display-ready text formatted on the server, so the browser
//! build needs neither the backend's types nor a date library.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One five-minute bar of a provider's chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketBar {
    /// Start of the bucket, `HH:MM` UTC.
    pub label: String,
    /// Requests recorded.
    pub calls: i64,
    /// Requests that failed.
    pub errors: i64,
    /// Median latency, such as `820 ms`, or `-` without calls.
    pub p50: String,
    /// 95th percentile latency.
    pub p95: String,
    /// Median latency in whole milliseconds, for the latency chart; `None` without calls.
    pub p50_ms: Option<u32>,
    /// 95th percentile latency in whole milliseconds.
    pub p95_ms: Option<u32>,
}

/// One failed call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLine {
    /// When it failed, `HH:MM:SS UTC`.
    pub at: String,
    /// The error class.
    pub class: String,
    /// The error sentence, without keys.
    pub error: String,
}

/// One provider of the chain, as its card shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderCard {
    /// Stored name: `openai_compatible`, `anthropic` or `offline`.
    pub key: String,
    /// Display name, such as `OpenAI-compatible`.
    pub name: String,
    /// The configured chat model.
    pub model: String,
    /// `closed`, `open`, `half_open`, or `none` for the offline rules.
    pub breaker_state: String,
    /// The breaker in words, such as `Open until 10:04:12 UTC`.
    pub breaker_text: String,
    /// Requests in the last hour.
    pub calls: i64,
    /// Failed requests in the last hour.
    pub errors: i64,
    /// Latency percentiles of the last hour, such as `820 ms`.
    pub p50: String,
    /// 95th percentile.
    pub p95: String,
    /// 99th percentile.
    pub p99: String,
    /// The last hour in five-minute bars, oldest first.
    pub series: Vec<BucketBar>,
    /// The newest failures, newest first.
    pub recent_errors: Vec<ErrorLine>,
}

/// The tenant's token and cost use this month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    /// The month, `YYYY-MM` (UTC).
    pub month: String,
    /// Tokens used, with thousands separators.
    pub tokens: String,
    /// The budget with thousands separators, or `unlimited`.
    pub limit: String,
    /// Share of the budget used, 0-100 and capped there for the bar; `None` when unlimited.
    pub percent: Option<f64>,
    /// Whether the tenant is at or over the budget, so requests go to the offline rules.
    pub exhausted: bool,
    /// Cost in US dollars, such as `$0.0123`.
    pub cost: String,
    /// Calls whose model has no configured price.
    pub unpriced_calls: u64,
}

/// Everything the providers page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvidersData {
    /// The chain in order, the offline rules last.
    pub cards: Vec<ProviderCard>,
    /// Budget use.
    pub budget: BudgetView,
    /// When the numbers were read, `YYYY-MM-DD HH:MM:SS UTC`.
    pub read_at: String,
}

/// Reads the provider chain's state for the caller's tenant. Admins only.
#[server(prefix = "/sfn", endpoint = "providers")]
pub async fn load_providers() -> Result<ProvidersData, ServerFnError> {
    use backend::http::{AdminRole, Authorized, CorrelationId};
    use backend::providers::overview;

    use crate::account::ssr as account;

    let correlation: CorrelationId = account::extract().await?;
    let caller = account::extract_parts::<Authorized<AdminRole>>()
        .await
        .map_err(account::api_error)?;
    let state = account::state()?;
    let tenant = caller.scope().tenant_id();
    let overview = overview::overview(&state.providers, tenant)
        .await
        .map_err(|error| account::page_error(error.into(), &correlation))?;
    Ok(ssr::page_data(overview))
}

/// Conversion of the backend's overview into display text.
#[cfg(feature = "ssr")]
mod ssr {
    use backend::providers::overview::{ProviderStatus, ProvidersOverview};
    use time::OffsetDateTime;

    use super::{BucketBar, BudgetView, ErrorLine, ProviderCard, ProvidersData};

    /// Converts the overview for the page.
    pub fn page_data(overview: ProvidersOverview) -> ProvidersData {
        let budget = &overview.budget;
        let limit = budget.limit_tokens;
        ProvidersData {
            cards: overview.providers.into_iter().map(card).collect(),
            budget: BudgetView {
                month: budget.month.clone(),
                tokens: thousands(budget.tokens),
                limit: if limit == 0 {
                    "unlimited".to_string()
                } else {
                    thousands(limit)
                },
                percent: budget.used_percent.map(|percent| percent.clamp(0.0, 100.0)),
                exhausted: limit > 0 && budget.tokens >= limit,
                cost: format!("${:.4}", budget.cost_usd),
                unpriced_calls: budget.unpriced_calls,
            },
            read_at: format_time(overview.generated_at, true),
        }
    }

    fn card(status: ProviderStatus) -> ProviderCard {
        let (breaker_state, breaker_text) = match &status.breaker {
            None => (
                "none".to_string(),
                "No breaker: the deterministic rules always answer".to_string(),
            ),
            Some(breaker) => {
                let state = breaker.state.as_str().to_string();
                let text = match (breaker.state.as_str(), breaker.reopens_at) {
                    ("open", Some(at)) => format!("Open until {}", format_time(at, false)),
                    ("half_open", _) => "Half-open: one probe call decides".to_string(),
                    _ => match breaker.recent_failures {
                        0 => "Closed".to_string(),
                        1 => "Closed, 1 recent failure".to_string(),
                        count => format!("Closed, {count} recent failures"),
                    },
                };
                (state, text)
            }
        };
        ProviderCard {
            name: display_name(&status.provider),
            key: status.provider,
            model: status.model,
            breaker_state,
            breaker_text,
            calls: status.last_hour.calls,
            errors: status.last_hour.errors,
            p50: millis(status.last_hour.p50_ms),
            p95: millis(status.last_hour.p95_ms),
            p99: millis(status.last_hour.p99_ms),
            series: status
                .series
                .into_iter()
                .map(|bucket| BucketBar {
                    label: clock(bucket.start),
                    calls: bucket.calls,
                    errors: bucket.errors,
                    p50: millis(bucket.p50_ms),
                    p95: millis(bucket.p95_ms),
                    p50_ms: bucket.p50_ms.map(whole_millis),
                    p95_ms: bucket.p95_ms.map(whole_millis),
                })
                .collect(),
            recent_errors: status
                .recent_errors
                .into_iter()
                .map(|error| ErrorLine {
                    at: format_time(error.at, false),
                    class: error.outcome,
                    error: error.error,
                })
                .collect(),
        }
    }

    /// Rounds a latency to whole milliseconds; latencies are recorded as whole milliseconds,
    /// so the cast only drops the fraction a percentile interpolates.
    fn whole_millis(ms: f64) -> u32 {
        ms.round().clamp(0.0, u32::MAX as f64) as u32
    }

    fn display_name(key: &str) -> String {
        match key {
            "openai_compatible" => "OpenAI-compatible",
            "anthropic" => "Anthropic",
            "offline" => "Offline rules",
            other => other,
        }
        .to_string()
    }

    /// Formats milliseconds as `820 ms` or `12.4 s`; `-` when there were no calls.
    fn millis(value: Option<f64>) -> String {
        match value {
            None => "-".to_string(),
            Some(ms) if ms >= 10_000.0 => format!("{:.1} s", ms / 1000.0),
            Some(ms) => format!("{ms:.0} ms"),
        }
    }

    /// Formats 1234567 as `1,234,567`.
    fn thousands(value: u64) -> String {
        let digits = value.to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (index, digit) in digits.chars().enumerate() {
            if index > 0 && (digits.len() - index).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        grouped
    }

    fn clock(at: OffsetDateTime) -> String {
        let format = time::macros::format_description!("[hour]:[minute]");
        at.to_offset(time::UtcOffset::UTC)
            .format(format)
            .unwrap_or_default()
    }

    /// Formats a time as `HH:MM:SS UTC`, with the date in front when `with_date` is set.
    fn format_time(at: OffsetDateTime, with_date: bool) -> String {
        let at = at.to_offset(time::UtcOffset::UTC);
        let result = if with_date {
            at.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
        } else {
            at.format(time::macros::format_description!(
                "[hour]:[minute]:[second] UTC"
            ))
        };
        result.unwrap_or_else(|_| at.to_string())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn thousands_groups_digits() {
            assert_eq!(thousands(0), "0");
            assert_eq!(thousands(999), "999");
            assert_eq!(thousands(1_000), "1,000");
            assert_eq!(thousands(2_000_000), "2,000,000");
        }

        #[test]
        fn millis_picks_unit() {
            assert_eq!(millis(None), "-");
            assert_eq!(millis(Some(820.4)), "820 ms");
            assert_eq!(millis(Some(12_400.0)), "12.4 s");
        }
    }
}
