//! `demo.fail`: a job that fails on demand, so tests can produce each error class, a panic, a
//! slow attempt, and an effect that must happen once. Workers register it only when demo jobs
//! are turned on (`DEMO_JOBS=true`), which only tests and demos do.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ErrorClass, JobError};
use super::runner::{JobContext, JobHandler};

/// Kind of the demo job.
pub const DEMO_KIND: &str = "demo.fail";

/// Arguments of [`DEMO_KIND`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoArgs {
    /// Attempts (counted over the job's life) that fail; later ones succeed. `None` fails all.
    pub fail_attempts: Option<i32>,
    /// Class of the failures.
    pub class: Option<ErrorClass>,
    /// `Retry-After` carried by rate-limited and circuit-open failures, in milliseconds.
    pub retry_after_ms: Option<u64>,
    /// Sleep before failing or succeeding, to test crashes and timeouts mid-run.
    pub sleep_ms: Option<u64>,
    /// Sleep only on the first delivery of an attempt, so a redelivery after a crash is quick.
    pub sleep_first_delivery_only: Option<bool>,
    /// Write a `demo_effects` row keyed by the job's idempotency key before sleeping.
    pub effect: Option<bool>,
    /// Panic instead of returning an error.
    pub panic: Option<bool>,
    /// Free-form data, to test the sanitizer on stored payloads.
    pub data: Option<Value>,
}

/// Handler of [`DEMO_KIND`].
pub struct DemoFailHandler;

#[async_trait::async_trait]
impl JobHandler for DemoFailHandler {
    /// Idempotent: the effect is an insert keyed by the job's idempotency key that does nothing
    /// when the row exists, so a second delivery never writes a second row.
    async fn run(&self, job: &JobContext, args: Value) -> Result<(), JobError> {
        let args: DemoArgs = serde_json::from_value(args).map_err(|error| {
            JobError::permanent(format!("invalid demo.fail arguments: {error}"))
        })?;
        if args.effect == Some(true) {
            sqlx::query(
                "INSERT INTO demo_effects (idempotency_key, job_id) VALUES ($1, $2) \
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(&job.idempotency_key)
            .bind(job.job_id)
            .execute(&job.pool)
            .await?;
        }
        let first_delivery = job.deliveries <= 1;
        let sleeps = first_delivery || args.sleep_first_delivery_only != Some(true);
        if let Some(sleep_ms) = args.sleep_ms.filter(|_| sleeps) {
            job.progress(50, Some("sleeping")).await?;
            tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        }
        let failing = args
            .fail_attempts
            .is_none_or(|fail_attempts| job.attempt <= fail_attempts);
        if !failing {
            return Ok(());
        }
        if args.panic == Some(true) {
            panic!("demo.fail was asked to panic on attempt {}", job.attempt);
        }
        let class = args.class.unwrap_or(ErrorClass::Permanent);
        let message = format!("demo failure on attempt {}", job.attempt);
        let retry_after = args.retry_after_ms.map(Duration::from_millis);
        Err(JobError {
            class,
            chain: vec![message, format!("requested class: {class}")],
            retry_after,
        })
    }
}
