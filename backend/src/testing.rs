//! Support for tests: a fresh, migrated database per test.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// Prefix of every test database, so one command can drop them all.
pub const TEST_DATABASE_PREFIX: &str = "siteline_test_";

/// Creates a new database named `siteline_test_<uuid>` on the server of `DATABASE_URL`, applies
/// the migrations and returns a pool to it.
///
/// # Panics
///
/// When `DATABASE_URL` is unset or the server refuses; a test cannot go on without a database.
pub async fn fresh_pool() -> PgPool {
    let admin_url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is unset: point it at a PostgreSQL server with pgvector where test \
         databases may be created (`make test` does this)",
    );
    let admin: PgConnectOptions = admin_url
        .parse()
        .expect("DATABASE_URL is not a valid PostgreSQL URL");
    let name = format!("{TEST_DATABASE_PREFIX}{}", Uuid::new_v4().simple());

    let mut connection = PgConnection::connect_with(&admin)
        .await
        .expect("cannot connect to DATABASE_URL to create a test database");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut connection)
        .await
        .expect("CREATE DATABASE failed");
    let _ = connection.close().await;

    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(admin.database(&name))
        .await
        .expect("cannot connect to the new test database");
    crate::db::migrate(&pool).await.expect("migrations failed");
    pool
}
