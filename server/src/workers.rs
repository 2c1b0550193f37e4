//! Background workers that run beside (or apart from) the web server.

use std::time::Duration;

use apalis::prelude::*;
use backend::jobs::{self, upkeep, JobSettings, Runner, Services};
use sqlx::PgPool;

/// Runs the job worker and the upkeep schedule with the embedded defaults (the local embedding
/// model and the offline rules) until `shutdown` resolves or the worker fails.
pub async fn run(
    pool: PgPool,
    settings: JobSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let services = Services::local(&pool, &settings);
    run_with_services(pool, settings, services, shutdown).await
}

/// Runs the job worker and the upkeep schedule, calling out through `services`, until
/// `shutdown` resolves or the worker fails.
pub async fn run_with_services(
    pool: PgPool,
    settings: JobSettings,
    services: Services,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let wake = jobs::wake::strategy(&pool, jobs::JOB_QUEUE, settings.poll_interval);
    run_with(pool, settings, services, wake, shutdown).await
}

/// Runs the job worker and the upkeep schedule with the wake-up strategy `wake` (see
/// [`jobs::wake`]), until `shutdown` resolves or the worker fails.
pub async fn run_with(
    pool: PgPool,
    settings: JobSettings,
    services: Services,
    wake: Strategy,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let registry = jobs::registry_with(&pool, &settings, services)?;
    let kinds = registry.kinds();
    let runner = Runner::new(pool.clone(), registry, settings.policy.clone());
    let backend = jobs::storage(&pool, &settings).poll_with_strategy(wake);

    // Names are unique per process: apalis records live workers by name.
    let name = format!("jobs-{}", uuid::Uuid::now_v7());
    let worker = WorkerBuilder::new(name.as_str())
        .backend(backend)
        .concurrency(settings.concurrency.max(1))
        .data(runner)
        .build(handle_delivery);

    tracing::info!(
        worker = name,
        kinds = kinds.join(","),
        concurrency = settings.concurrency,
        heartbeat_seconds = settings.heartbeat.as_secs(),
        orphaned_after_seconds = settings.orphaned_after().as_secs(),
        "workers started"
    );
    let result = tokio::select! {
        result = worker.run() => result.map_err(|error| anyhow::anyhow!("job worker failed: {error}")),
        () = schedule_upkeep(pool, settings) => Ok(()),
        () = shutdown => Ok(()),
    };
    tracing::info!(worker = name, "workers stopped");
    result
}

/// Queues the upkeep job once per period. Every worker process runs this timer; the job's
/// idempotency key is the period, so it runs once per period however many workers there are.
async fn schedule_upkeep(pool: PgPool, settings: JobSettings) {
    let period = settings.upkeep_interval.max(Duration::from_secs(1));
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        if let Err(error) = upkeep::schedule_upkeep(&pool, &settings).await {
            tracing::error!(%error, "queueing the upkeep job failed; trying again next period");
        }
    }
}

/// Runs one delivery through the runner. An error reaches apalis only when the outcome could
/// not be recorded, and apalis then delivers the attempt again.
async fn handle_delivery(
    payload: serde_json::Value,
    runner: Data<Runner>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let task_id = task_id.to_string();
    match runner.handle(payload, &task_id).await {
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::error!(task_id, error = %error, "recording a job outcome failed; apalis will deliver it again");
            Err(error.into())
        }
    }
}
