//! The audit trail against real PostgreSQL: append-only, hash-chained, verifiable.

use backend::audit::{self, Actor, AuditEvent};
use backend::testing::fresh_pool;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

async fn tenant(pool: &PgPool, slug: &str) -> Uuid {
    backend::accounts::create_tenant(pool, slug, "Audit test")
        .await
        .unwrap()
        .id
        .0
}

async fn record(pool: &PgPool, tenant: Uuid, action: &str, subject: &str) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    let event = AuditEvent::new(
        tenant,
        Actor::System,
        action,
        "test_subject",
        subject,
        json!({ "note": format!("{action} on {subject}") }),
    );
    audit::record(&mut conn, &event).await.unwrap()
}

#[tokio::test]
async fn chain_numbers_rows_per_tenant() {
    let pool = fresh_pool().await;
    let first = tenant(&pool, "first").await;
    let second = tenant(&pool, "second").await;

    assert_eq!(record(&pool, first, "thing.made", "a").await, 1);
    assert_eq!(record(&pool, first, "thing.made", "b").await, 2);
    assert_eq!(record(&pool, second, "thing.made", "c").await, 1);

    let verification = audit::verify(&pool, first).await.unwrap();
    assert!(verification.intact, "{verification:?}");
    assert_eq!(verification.rows, 2);
}

#[tokio::test]
async fn concurrent_writers_keep_one_chain() {
    let pool = fresh_pool().await;
    let tenant = tenant(&pool, "busy").await;
    let writers = (0..40).map(|index| {
        let pool = pool.clone();
        async move { record(&pool, tenant, "thing.made", &index.to_string()).await }
    });
    let mut seqs = futures::future::join_all(writers).await;
    seqs.sort();
    assert_eq!(seqs, (1..=40).collect::<Vec<i64>>());

    let verification = audit::verify(&pool, tenant).await.unwrap();
    assert!(verification.intact, "{verification:?}");
    assert_eq!(verification.rows, 40);
}

#[tokio::test]
async fn update_and_delete_are_refused() {
    let pool = fresh_pool().await;
    let tenant = tenant(&pool, "locked").await;
    record(&pool, tenant, "thing.made", "a").await;

    let update = sqlx::query("UPDATE audit_log SET action = 'thing.unmade'")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(update.to_string().contains("append-only"), "{update}");
    let delete = sqlx::query("DELETE FROM audit_log")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(delete.to_string().contains("append-only"), "{delete}");
    let truncate = sqlx::query("TRUNCATE audit_log")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(truncate.to_string().contains("append-only"), "{truncate}");
}

#[tokio::test]
async fn verify_finds_tampered_row() {
    let pool = fresh_pool().await;
    let tenant = tenant(&pool, "tampered").await;
    for subject in ["a", "b", "c", "d"] {
        record(&pool, tenant, "thing.made", subject).await;
    }

    // A superuser can switch the triggers off for its session; the chain still shows it.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_log SET detail = '{\"note\": \"rewritten\"}' \
          WHERE tenant_id = $1 AND seq = 3",
    )
    .bind(tenant)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("SET session_replication_role = origin")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);

    let verification = audit::verify(&pool, tenant).await.unwrap();
    assert!(!verification.intact);
    assert_eq!(verification.first_broken_seq, Some(3));
    assert_eq!(
        verification.reason.as_deref(),
        Some("its content does not match its hash")
    );
}

#[tokio::test]
async fn verify_finds_deleted_row() {
    let pool = fresh_pool().await;
    let tenant = tenant(&pool, "gap").await;
    for subject in ["a", "b", "c"] {
        record(&pool, tenant, "thing.made", subject).await;
    }
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND seq = 2")
        .bind(tenant)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("SET session_replication_role = origin")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);

    let verification = audit::verify(&pool, tenant).await.unwrap();
    assert!(!verification.intact);
    assert_eq!(verification.first_broken_seq, Some(3));
}
