//! Background workers that run beside (or apart from) the web server.

use std::time::Duration;

use apalis::prelude::*;
use backend::jobs::{self, Upkeep};
use sqlx::PgPool;

use crate::config::WorkerArgs;

/// Runs the workers until `shutdown` resolves or a worker fails.
pub async fn run(
    pool: PgPool,
    args: WorkerArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let period = Duration::from_secs(args.session_cleanup_seconds.max(1));
    let storage = jobs::upkeep_storage(&pool);
    let scheduler = schedule_upkeep(storage.clone(), period);

    // Names are unique per process: apalis records live workers by name.
    let name = format!("upkeep-{}", uuid::Uuid::now_v7());
    let worker = WorkerBuilder::new(name.as_str())
        .backend(storage.with_pubsub())
        .data(pool)
        .build(handle_upkeep);

    tracing::info!(
        worker = name,
        period_seconds = period.as_secs(),
        "workers started"
    );
    let result = tokio::select! {
        result = worker.run() => result.map_err(|error| anyhow::anyhow!("upkeep worker failed: {error}")),
        () = scheduler => Ok(()),
        () = shutdown => Ok(()),
    };
    tracing::info!(worker = name, "workers stopped");
    result
}

/// Queues an upkeep job every `period`. Each worker process queues its own; the job is
/// idempotent, so the extra runs only repeat deletes that find nothing.
async fn schedule_upkeep(mut storage: apalis_postgres::PostgresStorage<Upkeep>, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        if let Err(error) = storage.push(Upkeep::now()).await {
            tracing::error!(%error, "queueing the upkeep job failed; trying again next period");
        }
    }
}

/// Runs one upkeep job.
async fn handle_upkeep(job: Upkeep, pool: Data<PgPool>) -> Result<(), BoxDynError> {
    match jobs::run_upkeep(&pool).await {
        Ok(report) => {
            tracing::info!(
                queued_at = job.queued_at,
                sessions = report.sessions,
                login_attempts = report.login_attempts,
                "upkeep done"
            );
            Ok(())
        }
        Err(error) => {
            tracing::error!(queued_at = job.queued_at, error = %error, "upkeep failed");
            Err(error.into())
        }
    }
}
