//! The `provider_calls` records: one row per request sent to a model provider or routed to the
//! offline rules, with tokens, cost, latency and outcome.

use std::time::Duration;

use sqlx::PgPool;

use super::ProviderKind;
use crate::ids::TenantId;
use crate::jobs::sanitize::sanitize_text;
use crate::jobs::ErrorClass;

/// Maximum length, in characters, of the stored error sentence.
const MAX_ERROR_CHARS: usize = 1000;

/// Maximum length, in characters, of the stored fallback reason.
const MAX_FALLBACK_CHARS: usize = 2000;

/// The kind of request a recorded call made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A structured chat request.
    Chat,
    /// An embeddings request.
    Embed,
}

impl Operation {
    /// Returns the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Embed => "embed",
        }
    }
}

/// One call to record.
#[derive(Debug, Clone)]
pub struct CallRecord<'a> {
    /// The tenant the call was made for.
    pub tenant: TenantId,
    /// The provider that received the request.
    pub provider: ProviderKind,
    /// Chat or embeddings.
    pub operation: Operation,
    /// The model the provider reported, or the configured one when the call failed.
    pub model: &'a str,
    /// The prompt template, or the purpose of an embeddings request.
    pub template: &'a str,
    /// Hex SHA-256 of the request.
    pub prompt_hash: &'a str,
    /// 1 for the first request, 2 for the repair request.
    pub attempt: u8,
    /// Input tokens billed.
    pub input_tokens: u32,
    /// Output tokens billed.
    pub output_tokens: u32,
    /// Cost in US dollars, `None` when the model has no price.
    pub cost_usd: Option<f64>,
    /// Time the request took.
    pub latency: Duration,
    /// `None` for success, else the error class of the failure.
    pub failure: Option<ErrorClass>,
    /// The error sentence; it is sanitized again before storing.
    pub error: Option<&'a str>,
    /// The reasons earlier providers were skipped or failed.
    pub fallback_reason: Option<&'a str>,
    /// The request or job that made the call.
    pub correlation_id: &'a str,
}

/// Inserts one call record. Error and fallback texts pass through
/// [`crate::jobs::sanitize::sanitize_text`], because they quote provider responses.
pub async fn record(pool: &PgPool, call: &CallRecord<'_>) -> Result<(), sqlx::Error> {
    let outcome = call.failure.map(ErrorClass::as_str).unwrap_or("ok");
    let clean =
        |text: &str, max: usize| -> String { sanitize_text(text).chars().take(max).collect() };
    let model: String = call.model.chars().take(200).collect();
    let template: String = call.template.chars().take(100).collect();
    sqlx::query(
        "INSERT INTO provider_calls (tenant_id, provider, operation, model, template, \
                                     prompt_hash, attempt, input_tokens, output_tokens, cost_usd, \
                                     latency_ms, outcome, error, fallback_reason, correlation_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::float8::numeric(14, 8), $11, $12, $13, \
                 $14, $15)",
    )
    .bind(call.tenant.0)
    .bind(call.provider.as_str())
    .bind(call.operation.as_str())
    .bind(model)
    .bind(template)
    .bind(call.prompt_hash)
    .bind(i16::from(call.attempt))
    .bind(i32::try_from(call.input_tokens).unwrap_or(i32::MAX))
    .bind(i32::try_from(call.output_tokens).unwrap_or(i32::MAX))
    .bind(call.cost_usd)
    .bind(i32::try_from(call.latency.as_millis()).unwrap_or(i32::MAX))
    .bind(outcome)
    .bind(call.error.map(|text| clean(text, MAX_ERROR_CHARS)))
    .bind(
        call.fallback_reason
            .map(|text| clean(text, MAX_FALLBACK_CHARS)),
    )
    .bind(call.correlation_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes call records older than `retention` and returns how many went. The caller keeps
/// `retention` above a month, because the monthly budget sums the current month's rows.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM provider_calls WHERE created_at < now() - make_interval(secs => $1)",
    )
    .bind(retention.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected())
}
