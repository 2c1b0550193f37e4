//! Running one delivery: claim the attempt, run its handler, record the outcome.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use serde_json::Value;
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use super::error::JobError;
use super::ledger::{self, Envelope, FailureOutcome};
use super::policy::RetryPolicy;

/// Maximum run time of one attempt before it counts as a network-class failure.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The job facts a handler receives with each attempt.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// Database pool.
    pub pool: PgPool,
    /// Stable job id.
    pub job_id: Uuid,
    /// Handler name.
    pub kind: String,
    /// Owning tenant.
    pub tenant_id: Option<Uuid>,
    /// The attempt being run, 1-based over the job's life.
    pub attempt: i32,
    /// Deliveries of this attempt; above 1 means an earlier delivery died mid-run.
    pub deliveries: i32,
    /// The correlation id of the request or schedule that queued the job.
    pub correlation_id: String,
    /// The job's deduplication key, on which handlers key their effects.
    pub idempotency_key: String,
}

impl JobContext {
    /// Records progress (0-100) shown on the job's pages.
    pub async fn progress(&self, percent: u8, note: Option<&str>) -> Result<(), JobError> {
        ledger::set_progress(&self.pool, self.job_id, percent, note).await?;
        Ok(())
    }
}

/// A job kind's handler. apalis delivers at least once, so `run` must be idempotent: each
/// implementation documents how a second delivery of the same attempt stays correct.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one attempt.
    async fn run(&self, job: &JobContext, args: Value) -> Result<(), JobError>;

    /// Returns the maximum run time of one attempt.
    fn timeout(&self) -> Duration {
        DEFAULT_HANDLER_TIMEOUT
    }
}

/// Handlers by job kind.
#[derive(Default, Clone)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl Registry {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the handler of `kind`, replacing any earlier one.
    pub fn register(mut self, kind: &str, handler: impl JobHandler) -> Self {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    /// Returns the registered kinds, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(kind).cloned()
    }
}

/// The outcome of one delivery, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The attempt was no longer current; nothing ran.
    Skipped,
    /// The handler succeeded.
    Succeeded,
    /// The handler failed; the ledger recorded what comes next.
    Failed(FailureOutcome),
}

/// Runs deliveries against a registry with a retry policy.
#[derive(Clone)]
pub struct Runner {
    pool: PgPool,
    registry: Arc<Registry>,
    policy: Arc<RetryPolicy>,
}

impl Runner {
    /// Creates a runner.
    pub fn new(pool: PgPool, registry: Registry, policy: RetryPolicy) -> Self {
        Self {
            pool,
            registry: Arc::new(registry),
            policy: Arc::new(policy),
        }
    }

    /// Returns the retry policy in force.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Runs one delivery of a raw apalis payload. An `Err` means the outcome could not be
    /// recorded (the database is unreachable, say); apalis then delivers the same attempt again,
    /// which the ledger accepts because the attempt is still `running`.
    pub async fn handle(&self, raw: Value, task_id: &str) -> anyhow::Result<DeliveryOutcome> {
        let envelope: Envelope = serde_json::from_value(raw).map_err(|error| {
            tracing::error!(
                task_id,
                %error,
                "job payload is not a Siteline envelope; it stays failed in apalis.jobs"
            );
            anyhow::anyhow!("job {task_id} has an unreadable envelope: {error}")
        })?;
        let span = tracing::info_span!(
            "job",
            job_id = %envelope.job_id,
            kind = envelope.kind,
            attempt = envelope.attempt,
            correlation_id = envelope.correlation_id,
            tenant_id = envelope.tenant_id.map(|id| id.to_string()),
        );
        self.handle_envelope(envelope).instrument(span).await
    }

    async fn handle_envelope(&self, envelope: Envelope) -> anyhow::Result<DeliveryOutcome> {
        let Some(claim) = ledger::claim(&self.pool, &envelope).await? else {
            tracing::info!("duplicate or outdated delivery skipped");
            return Ok(DeliveryOutcome::Skipped);
        };
        if claim.deliveries > 1 {
            tracing::warn!(
                deliveries = claim.deliveries,
                "attempt delivered again after a worker stopped mid-run"
            );
        }
        let context = JobContext {
            pool: self.pool.clone(),
            job_id: envelope.job_id,
            kind: envelope.kind.clone(),
            tenant_id: envelope.tenant_id,
            attempt: envelope.attempt,
            deliveries: claim.deliveries,
            correlation_id: envelope.correlation_id.clone(),
            idempotency_key: envelope.idempotency_key.clone(),
        };

        let started = std::time::Instant::now();
        let result = self.run_handler(&context, envelope.args.clone()).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;

        match result {
            Ok(()) => {
                ledger::complete(&self.pool, &envelope).await?;
                metrics::counter!("jobs_finished_total", "outcome" => "succeeded").increment(1);
                tracing::info!(elapsed_ms, "job succeeded");
                Ok(DeliveryOutcome::Succeeded)
            }
            Err(error) => {
                let outcome = ledger::fail(&self.pool, &envelope, &error, &self.policy).await?;
                self.report_failure(&envelope, &error, &outcome, elapsed_ms);
                Ok(DeliveryOutcome::Failed(outcome))
            }
        }
    }

    /// Runs the handler with its timeout, turning a panic into a permanent error so a bad
    /// payload never takes the worker down.
    async fn run_handler(&self, context: &JobContext, args: Value) -> Result<(), JobError> {
        let Some(handler) = self.registry.get(&context.kind) else {
            return Err(JobError::permanent(format!(
                "no handler for job kind '{}' in this worker (known kinds: {}); deploy a \
                 worker that knows it, then retry the dead letter",
                context.kind,
                self.registry.kinds().join(", ")
            )));
        };
        let limit = handler.timeout();
        let attempt = AssertUnwindSafe(handler.run(context, args)).catch_unwind();
        match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| text.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_string());
                Err(JobError::permanent(format!(
                    "the '{}' handler panicked: {message}",
                    context.kind
                )))
            }
            Err(_) => Err(JobError::network(format!(
                "the attempt timed out after {} s",
                limit.as_secs()
            ))),
        }
    }

    fn report_failure(
        &self,
        envelope: &Envelope,
        error: &JobError,
        outcome: &FailureOutcome,
        elapsed_ms: u64,
    ) {
        let class = error.class.as_str();
        // Error text can carry what the payload sanitizer removes (a webhook URL's token path,
        // an email), so logs get the same redaction as dead letters.
        let error = super::sanitize::sanitize_text(&error.to_string());
        match outcome {
            FailureOutcome::Retrying {
                next_attempt,
                run_after,
            } => {
                metrics::counter!("jobs_finished_total", "outcome" => "retrying").increment(1);
                tracing::warn!(
                    class,
                    %error,
                    next_attempt,
                    run_after = %run_after,
                    elapsed_ms,
                    "job attempt failed; retry scheduled"
                );
            }
            FailureOutcome::Dead {
                dead_letter_id,
                critical,
            } => {
                metrics::counter!("jobs_finished_total", "outcome" => "dead").increment(1);
                let dead_letter_id = dead_letter_id.map(|id| id.to_string());
                if *critical {
                    // The alert line: log collectors page on it even without a webhook.
                    tracing::error!(
                        alert = true,
                        class,
                        %error,
                        dead_letter_id,
                        kind = envelope.kind,
                        "CRITICAL job failed for good and is in dead letters"
                    );
                } else {
                    tracing::error!(
                        class,
                        %error,
                        dead_letter_id,
                        "job failed for good and is in dead letters"
                    );
                }
            }
            FailureOutcome::Stale => {
                tracing::info!(%error, "failure of an outdated delivery ignored");
            }
        }
    }
}
