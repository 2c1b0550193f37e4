//! The circuit breaker of one provider for one tenant, stored in PostgreSQL so that every
//! process sees the same state.
//!
//! Closed, it lets every call through and counts failures in a sliding window; at the threshold
//! it opens. Open, it rejects calls until `reopens_at`. Then the first caller takes the single
//! half-open probe (the breaker is now half-open) and every other caller is rejected until the
//! probe ends: success closes the breaker, a failure opens it again.
//!
//! Only failures that say the provider is unwell count: timeouts, 5xx and 408, connection and
//! transport errors, broken response bodies, and output still invalid after the repair request
//! (a model that cannot follow the schema twice is not fit to answer). A 429 is handled by the
//! rate limiter, and a rejected request (other 4xx), an unsupported operation or a request that
//! fails our own checks do not count, because they say nothing about the provider's health.

use sqlx::{PgPool, Row};
use time::OffsetDateTime;

use super::settings::BreakerSettings;
use super::{ProviderError, ProviderKind};
use crate::ids::TenantId;

/// The state of a breaker, stored as `closed`, `open` or `half_open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are rejected until the reopen time.
    Open,
    /// One probe call runs or may run; others are rejected.
    HalfOpen,
}

impl BreakerState {
    /// Returns the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "open" => BreakerState::Open,
            "half_open" => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

/// The effect of a finished call on the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The provider answered with valid output.
    Success,
    /// The provider is unwell: the failure counts toward opening the breaker.
    Failure,
    /// The call failed for a reason that says nothing about the provider's health.
    Neutral,
}

impl CallOutcome {
    /// Classifies a failed call; see the module documentation for which failures count.
    pub fn of_error(error: &ProviderError) -> Self {
        match error {
            ProviderError::ServerError { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Connect { .. }
            | ProviderError::Transport { .. }
            | ProviderError::MalformedResponse { .. }
            | ProviderError::MalformedOutput { .. } => CallOutcome::Failure,
            ProviderError::RateLimited { .. }
            | ProviderError::Rejected { .. }
            | ProviderError::InvalidRequest { .. }
            | ProviderError::Unsupported { .. }
            | ProviderError::InvalidConfig { .. } => CallOutcome::Neutral,
        }
    }
}

/// The breaker's decision about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed.
    Allowed,
    /// The caller runs the single half-open probe and must report its outcome as a probe.
    Probe,
    /// The breaker is open until `reopens_at`.
    Open {
        /// When the next probe may run.
        reopens_at: OffsetDateTime,
    },
    /// Another caller's probe is running.
    ProbeRunning,
}

/// The stored fields of one breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    /// The current state.
    pub state: BreakerState,
    /// Failure times inside the failure window, oldest first.
    pub failures: Vec<OffsetDateTime>,
    /// When the breaker last opened.
    pub opened_at: Option<OffsetDateTime>,
    /// When an open breaker lets a probe through.
    pub reopens_at: Option<OffsetDateTime>,
    /// When the running probe started.
    pub probe_started_at: Option<OffsetDateTime>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: BreakerState::Closed,
            failures: Vec::new(),
            opened_at: None,
            reopens_at: None,
            probe_started_at: None,
        }
    }
}

impl Breaker {
    /// Decides whether a call may start at `now`, taking the probe when one is due.
    pub fn admit(&mut self, now: OffsetDateTime, settings: &BreakerSettings) -> Admission {
        match self.state {
            BreakerState::Closed => Admission::Allowed,
            BreakerState::Open => {
                let reopens_at = self.reopens_at.unwrap_or(now);
                if now < reopens_at {
                    return Admission::Open { reopens_at };
                }
                self.state = BreakerState::HalfOpen;
                self.probe_started_at = Some(now);
                Admission::Probe
            }
            BreakerState::HalfOpen => {
                let probe_lost = self
                    .probe_started_at
                    .is_none_or(|started| now >= started + settings.probe_lease);
                if !probe_lost {
                    return Admission::ProbeRunning;
                }
                self.probe_started_at = Some(now);
                Admission::Probe
            }
        }
    }

    /// Applies the outcome of a call that started with `probe` set when it was the probe.
    pub fn finish(
        &mut self,
        outcome: CallOutcome,
        probe: bool,
        now: OffsetDateTime,
        settings: &BreakerSettings,
    ) {
        match outcome {
            CallOutcome::Success => {
                // Only the probe closes the breaker: a call admitted before the breaker opened
                // that succeeds late proves less than the probe that ran after the pause.
                if probe && self.state == BreakerState::HalfOpen {
                    *self = Breaker::default();
                }
            }
            CallOutcome::Neutral => {
                if probe && self.state == BreakerState::HalfOpen {
                    self.probe_started_at = None;
                }
            }
            CallOutcome::Failure => {
                let window_start = now - settings.failure_window;
                self.failures.retain(|at| *at > window_start);
                self.failures.push(now);
                let reopen = match self.state {
                    BreakerState::Closed => {
                        self.failures.len() >= settings.failure_threshold.max(1) as usize
                    }
                    BreakerState::HalfOpen => probe,
                    BreakerState::Open => false,
                };
                if reopen {
                    self.state = BreakerState::Open;
                    self.opened_at = Some(now);
                    self.reopens_at = Some(now + settings.open_for);
                    self.probe_started_at = None;
                }
            }
        }
    }
}

/// Asks the breaker of `provider` for `tenant` whether a call may start. A closed breaker costs
/// one read; otherwise the row is locked so that only one process takes the probe.
pub async fn admit(
    pool: &PgPool,
    tenant: TenantId,
    provider: ProviderKind,
    settings: &BreakerSettings,
) -> Result<Admission, sqlx::Error> {
    let state: Option<String> = sqlx::query_scalar(
        "SELECT state FROM provider_breakers WHERE tenant_id = $1 AND provider = $2",
    )
    .bind(tenant.0)
    .bind(provider.as_str())
    .fetch_optional(pool)
    .await?;
    if state.as_deref().is_none_or(|state| state == "closed") {
        return Ok(Admission::Allowed);
    }

    let mut transaction = pool.begin().await?;
    let (mut breaker, now) = lock(&mut transaction, tenant, provider).await?;
    let before = breaker.clone();
    let admission = breaker.admit(now, settings);
    if breaker != before {
        store(&mut transaction, tenant, provider, &breaker).await?;
    }
    transaction.commit().await?;
    Ok(admission)
}

/// Reports the outcome of a call; returns the breaker's state afterwards. A successful call
/// that was not a probe changes nothing and writes nothing.
pub async fn finish(
    pool: &PgPool,
    tenant: TenantId,
    provider: ProviderKind,
    outcome: CallOutcome,
    probe: bool,
    settings: &BreakerSettings,
) -> Result<BreakerState, sqlx::Error> {
    if outcome != CallOutcome::Failure && !probe {
        return Ok(BreakerState::Closed);
    }
    let mut transaction = pool.begin().await?;
    let (mut breaker, now) = lock(&mut transaction, tenant, provider).await?;
    let before = breaker.clone();
    breaker.finish(outcome, probe, now, settings);
    if breaker != before {
        store(&mut transaction, tenant, provider, &breaker).await?;
    }
    transaction.commit().await?;
    Ok(breaker.state)
}

/// Reads a breaker without locking it, for the providers page; a missing row is closed.
pub async fn read(
    pool: &PgPool,
    tenant: TenantId,
    provider: ProviderKind,
) -> Result<(Breaker, OffsetDateTime), sqlx::Error> {
    let row = sqlx::query(
        "SELECT now() AS now, b.state, b.failures, b.opened_at, b.reopens_at, b.probe_started_at \
           FROM (SELECT 1) AS one \
           LEFT JOIN provider_breakers b ON b.tenant_id = $1 AND b.provider = $2",
    )
    .bind(tenant.0)
    .bind(provider.as_str())
    .fetch_one(pool)
    .await?;
    Ok((from_row(&row), row.get("now")))
}

/// Locks the breaker row, creating it when missing, and returns it with the database's clock,
/// which every process shares.
async fn lock(
    transaction: &mut sqlx::PgConnection,
    tenant: TenantId,
    provider: ProviderKind,
) -> Result<(Breaker, OffsetDateTime), sqlx::Error> {
    sqlx::query(
        "INSERT INTO provider_breakers (tenant_id, provider) VALUES ($1, $2) \
         ON CONFLICT (tenant_id, provider) DO NOTHING",
    )
    .bind(tenant.0)
    .bind(provider.as_str())
    .execute(&mut *transaction)
    .await?;
    let row = sqlx::query(
        "SELECT clock_timestamp() AS now, state, failures, opened_at, reopens_at, \
                probe_started_at \
           FROM provider_breakers WHERE tenant_id = $1 AND provider = $2 FOR UPDATE",
    )
    .bind(tenant.0)
    .bind(provider.as_str())
    .fetch_one(&mut *transaction)
    .await?;
    Ok((from_row(&row), row.get("now")))
}

fn from_row(row: &sqlx::postgres::PgRow) -> Breaker {
    let state: Option<String> = row.get("state");
    Breaker {
        state: state
            .as_deref()
            .map(BreakerState::parse)
            .unwrap_or(BreakerState::Closed),
        failures: row
            .get::<Option<Vec<OffsetDateTime>>, _>("failures")
            .unwrap_or_default(),
        opened_at: row.get("opened_at"),
        reopens_at: row.get("reopens_at"),
        probe_started_at: row.get("probe_started_at"),
    }
}

async fn store(
    transaction: &mut sqlx::PgConnection,
    tenant: TenantId,
    provider: ProviderKind,
    breaker: &Breaker,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provider_breakers \
            SET state = $3, failures = $4, opened_at = $5, reopens_at = $6, \
                probe_started_at = $7, updated_at = now() \
          WHERE tenant_id = $1 AND provider = $2",
    )
    .bind(tenant.0)
    .bind(provider.as_str())
    .bind(breaker.state.as_str())
    .bind(&breaker.failures)
    .bind(breaker.opened_at)
    .bind(breaker.reopens_at)
    .bind(breaker.probe_started_at)
    .execute(&mut *transaction)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failure_threshold: 3,
            failure_window: Duration::from_secs(300),
            open_for: Duration::from_secs(60),
            probe_lease: Duration::from_secs(120),
        }
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_800_000_000 + seconds)
    }

    fn open_at(seconds: i64) -> Breaker {
        Breaker {
            state: BreakerState::Open,
            failures: vec![at(seconds - 2), at(seconds - 1), at(seconds)],
            opened_at: Some(at(seconds)),
            reopens_at: Some(at(seconds + 60)),
            probe_started_at: None,
        }
    }

    #[test]
    fn three_failures_in_window_open() {
        let settings = settings();
        let mut breaker = Breaker::default();
        breaker.finish(CallOutcome::Failure, false, at(0), &settings);
        breaker.finish(CallOutcome::Failure, false, at(100), &settings);
        assert_eq!(breaker.state, BreakerState::Closed);
        breaker.finish(CallOutcome::Failure, false, at(200), &settings);
        assert_eq!(breaker.state, BreakerState::Open);
        assert_eq!(breaker.opened_at, Some(at(200)));
        assert_eq!(breaker.reopens_at, Some(at(260)));
    }

    #[test]
    fn failures_outside_window_expire() {
        let settings = settings();
        let mut breaker = Breaker::default();
        breaker.finish(CallOutcome::Failure, false, at(0), &settings);
        breaker.finish(CallOutcome::Failure, false, at(100), &settings);
        breaker.finish(CallOutcome::Failure, false, at(301), &settings);
        assert_eq!(breaker.state, BreakerState::Closed);
        assert_eq!(breaker.failures, vec![at(100), at(301)]);
    }

    #[test]
    fn neutral_and_success_do_not_count() {
        let settings = settings();
        let mut breaker = Breaker::default();
        for second in 0..5 {
            breaker.finish(CallOutcome::Neutral, false, at(second), &settings);
            breaker.finish(CallOutcome::Success, false, at(second), &settings);
        }
        assert_eq!(breaker, Breaker::default());
    }

    #[test]
    fn admission_table() {
        let settings = settings();
        let probing = Breaker {
            state: BreakerState::HalfOpen,
            probe_started_at: Some(at(60)),
            ..open_at(0)
        };
        let released = Breaker {
            probe_started_at: None,
            ..probing.clone()
        };
        let cases = [
            (Breaker::default(), at(0), Admission::Allowed),
            (open_at(0), at(59), Admission::Open { reopens_at: at(60) }),
            (open_at(0), at(60), Admission::Probe),
            (probing.clone(), at(61), Admission::ProbeRunning),
            (probing.clone(), at(179), Admission::ProbeRunning),
            (probing, at(180), Admission::Probe),
            (released, at(61), Admission::Probe),
        ];
        for (index, (mut breaker, now, expected)) in cases.into_iter().enumerate() {
            assert_eq!(breaker.admit(now, &settings), expected, "case {index}");
            if expected == Admission::Probe {
                assert_eq!(breaker.state, BreakerState::HalfOpen, "case {index}");
                assert_eq!(breaker.probe_started_at, Some(now), "case {index}");
            }
        }
    }

    #[test]
    fn probe_success_closes() {
        let settings = settings();
        let mut breaker = open_at(0);
        assert_eq!(breaker.admit(at(60), &settings), Admission::Probe);
        breaker.finish(CallOutcome::Success, true, at(61), &settings);
        assert_eq!(breaker, Breaker::default());
    }

    #[test]
    fn probe_failure_reopens() {
        let settings = settings();
        let mut breaker = open_at(0);
        assert_eq!(breaker.admit(at(60), &settings), Admission::Probe);
        breaker.finish(CallOutcome::Failure, true, at(62), &settings);
        assert_eq!(breaker.state, BreakerState::Open);
        assert_eq!(breaker.reopens_at, Some(at(122)));
        assert_eq!(breaker.probe_started_at, None);
    }

    #[test]
    fn neutral_probe_frees_the_probe() {
        let settings = settings();
        let mut breaker = open_at(0);
        assert_eq!(breaker.admit(at(60), &settings), Admission::Probe);
        breaker.finish(CallOutcome::Neutral, true, at(61), &settings);
        assert_eq!(breaker.state, BreakerState::HalfOpen);
        assert_eq!(breaker.admit(at(62), &settings), Admission::Probe);
    }

    #[test]
    fn late_results_of_other_calls_change_little() {
        let settings = settings();
        let mut breaker = open_at(0);
        breaker.finish(CallOutcome::Success, false, at(10), &settings);
        assert_eq!(breaker.state, BreakerState::Open);
        breaker.finish(CallOutcome::Failure, false, at(20), &settings);
        assert_eq!(breaker.state, BreakerState::Open);
        assert_eq!(
            breaker.reopens_at,
            Some(at(60)),
            "a late failure does not extend"
        );

        assert_eq!(breaker.admit(at(60), &settings), Admission::Probe);
        breaker.finish(CallOutcome::Success, false, at(61), &settings);
        assert_eq!(
            breaker.state,
            BreakerState::HalfOpen,
            "only the probe closes"
        );
        breaker.finish(CallOutcome::Failure, false, at(62), &settings);
        assert_eq!(
            breaker.state,
            BreakerState::HalfOpen,
            "only the probe reopens"
        );
    }

    #[test]
    fn error_classification() {
        let endpoint = || "http://127.0.0.1:9/v1/chat/completions".to_string();
        let failure = ProviderError::ServerError {
            endpoint: endpoint(),
            status: 503,
            detail: String::new(),
        };
        let rejected = ProviderError::Rejected {
            endpoint: endpoint(),
            status: 400,
            detail: String::new(),
        };
        let limited = ProviderError::RateLimited {
            endpoint: endpoint(),
            retry_after: None,
            detail: String::new(),
        };
        assert_eq!(CallOutcome::of_error(&failure), CallOutcome::Failure);
        assert_eq!(CallOutcome::of_error(&rejected), CallOutcome::Neutral);
        assert_eq!(CallOutcome::of_error(&limited), CallOutcome::Neutral);
    }
}
