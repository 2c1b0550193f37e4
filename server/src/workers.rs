//! Background work that runs beside (or apart from) the web server.

use std::time::Duration;

use backend::sessions::PgSessionStore;
use sqlx::PgPool;
use tower_sessions::session_store::ExpiredDeletion;

use crate::config::WorkerArgs;

/// Runs the workers until `shutdown` resolves.
pub async fn run(
    pool: PgPool,
    args: WorkerArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tracing::info!(
        session_cleanup_seconds = args.session_cleanup_seconds,
        "workers started"
    );
    let period = Duration::from_secs(args.session_cleanup_seconds.max(1));
    tokio::select! {
        () = delete_expired_sessions(pool, period) => {}
        () = shutdown => {}
    }
    tracing::info!("workers stopped");
    Ok(())
}

/// Login attempts are kept this long: well past any throttling window, for investigations.
const LOGIN_ATTEMPT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Deletes expired sessions and old login attempts every `period`. Deleting is idempotent, so
/// several worker processes doing it at once is harmless.
async fn delete_expired_sessions(pool: PgPool, period: Duration) {
    let store = PgSessionStore::new(pool.clone());
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        if let Err(error) = store.delete_expired().await {
            tracing::error!(%error, "deleting expired sessions failed; retrying next period");
        }
        match backend::accounts::prune_login_attempts(&pool, LOGIN_ATTEMPT_RETENTION).await {
            Ok(deleted) => tracing::debug!(deleted, "old login attempts deleted"),
            Err(error) => {
                tracing::error!(%error, "deleting old login attempts failed; retrying next period")
            }
        }
    }
}
