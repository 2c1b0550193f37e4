//! The upkeep job through a real apalis worker and PostgreSQL queue.

use std::time::Duration;

use backend::jobs::JobSettings;
use backend::testing::fresh_pool;

#[tokio::test]
async fn upkeep_job_deletes_expired_rows() {
    let pool = fresh_pool().await;
    sqlx::query(
        "INSERT INTO sessions (id, data, expiry_date) VALUES
           ('expired', '{}', now() - interval '1 minute'),
           ('live', '{}', now() + interval '1 hour')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO login_attempts (email, ip, succeeded, attempted_at) VALUES
           ('old@x.test', '127.0.0.1', false, now() - interval '30 days'),
           ('new@x.test', '127.0.0.1', false, now())",
    )
    .execute(&pool)
    .await
    .unwrap();

    let settings = JobSettings {
        upkeep_interval: Duration::from_secs(1),
        ..JobSettings::default()
    };
    let workers = tokio::spawn(server::workers::run(
        pool.clone(),
        settings,
        std::future::pending(),
    ));

    // The worker learns of new jobs through LISTEN/NOTIFY, so this takes about a second.
    let mut done = 0i64;
    for _ in 0..100 {
        done = sqlx::query_scalar(
            "SELECT count(*) FROM job_ledger WHERE kind = 'system.upkeep' AND status = 'succeeded'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if done > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    workers.abort();
    assert!(done > 0, "no upkeep job finished within 10 s");

    let sessions: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(sessions, vec!["live".to_string()]);
    let attempts: Vec<String> = sqlx::query_scalar("SELECT email FROM login_attempts")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(attempts, vec!["new@x.test".to_string()]);
}

#[tokio::test]
async fn upkeep_twice_is_harmless() {
    let pool = fresh_pool().await;
    sqlx::query("INSERT INTO sessions (id, data, expiry_date) VALUES ('expired', '{}', now() - interval '1 minute')")
        .execute(&pool)
        .await
        .unwrap();

    let settings = JobSettings::default();
    let first = backend::jobs::upkeep::run_upkeep(&pool, &settings)
        .await
        .unwrap();
    let second = backend::jobs::upkeep::run_upkeep(&pool, &settings)
        .await
        .unwrap();

    assert_eq!(first.sessions, 1);
    assert_eq!(second.sessions, 0);
}
