//! Connecting to PostgreSQL and applying the schema migrations.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Opens a pool to `url` with at most `max_connections` connections.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().map_err(|error| {
        anyhow::anyhow!(
            "DATABASE_URL is not a valid PostgreSQL URL ({error}); expected \
             postgres://user@host:port/database"
        )
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|error| anyhow::anyhow!("cannot connect to PostgreSQL: {error}"))?;
    Ok(pool)
}

/// Applies every pending migration: ours, then the job queue's (kept in its own schema).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|error| anyhow::anyhow!("migrations failed: {error}"))?;
    crate::jobs::setup_queue(pool).await
}

/// Checks that the database responds and every embedded migration has been applied.
pub async fn readiness(pool: &PgPool) -> Result<(), String> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .map_err(|error| format!("database not reachable or not migrated: {error}"))?;

    let missing: Vec<String> = MIGRATOR
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .map(|migration| migration.version.to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "migrations not applied: {}; run `server migrate`",
            missing.join(", ")
        ))
    }
}
