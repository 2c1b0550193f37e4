//! Dead-letter queries and actions against real PostgreSQL: filters, discard rules, the audit
//! entries they leave, retention and the per-tenant cap.

use std::time::Duration;

use backend::audit::Actor;
use backend::jobs::dead_letters::{self, ActionContext, ActionError, Filter};
use backend::jobs::ErrorClass;
use backend::testing::fresh_pool;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

async fn tenant(pool: &PgPool, slug: &str) -> Uuid {
    backend::accounts::create_tenant(pool, slug, "Dead letter test")
        .await
        .unwrap()
        .id
        .0
}

/// Writes a dead job and its dead letter directly, failed `age_days` ago.
async fn dead_letter(
    pool: &PgPool,
    tenant: Option<Uuid>,
    kind: &str,
    class: ErrorClass,
    critical: bool,
    age_days: i32,
) -> Uuid {
    let job_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO job_ledger (id, tenant_id, kind, idempotency_key, correlation_id, args, \
                                 critical, status, queue_task_id) \
         VALUES ($1, $2, $3, $1::text, 'corr-test', '{}', $4, 'dead', 'none')",
    )
    .bind(job_id)
    .bind(tenant)
    .bind(kind)
    .bind(critical)
    .execute(pool)
    .await
    .unwrap();
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO dead_letters (id, job_id, run, tenant_id, kind, error_class, error_chain, \
                                   attempts, attempt_count, correlation_id, critical, payload, \
                                   failed_at) \
         VALUES ($1, $2, 1, $3, $4, $5, $6, '[]', 1, 'corr-test', $7, $8, \
                 now() - make_interval(days => $9))",
    )
    .bind(id)
    .bind(job_id)
    .bind(tenant)
    .bind(kind)
    .bind(class.as_str())
    .bind(json!([format!("{kind} failed")]))
    .bind(critical)
    .bind(json!({ "site": format!("SITE-{kind}") }))
    .bind(age_days)
    .execute(pool)
    .await
    .unwrap();
    id
}

fn operator() -> ActionContext {
    ActionContext {
        actor: Actor::Operator,
        ip: None,
        user_agent: None,
        correlation_id: Some("corr-action".to_string()),
    }
}

#[tokio::test]
async fn filters_narrow_the_list() {
    let pool = fresh_pool().await;
    let mine = tenant(&pool, "mine").await;
    let other = tenant(&pool, "other").await;
    let network = dead_letter(&pool, Some(mine), "a.fetch", ErrorClass::Network, false, 0).await;
    let critical = dead_letter(
        &pool,
        Some(mine),
        "change_set.apply",
        ErrorClass::Database,
        true,
        2,
    )
    .await;
    dead_letter(&pool, Some(other), "a.fetch", ErrorClass::Network, false, 0).await;

    let all = dead_letters::list(&pool, Some(mine), &Filter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "only the caller's tenant");

    let by_class = Filter {
        class: Some(ErrorClass::Network),
        ..Filter::default()
    };
    let rows = dead_letters::list(&pool, Some(mine), &by_class)
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|row| row.id).collect::<Vec<_>>(),
        vec![network]
    );

    let by_critical = Filter {
        critical: Some(true),
        ..Filter::default()
    };
    let rows = dead_letters::list(&pool, Some(mine), &by_critical)
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|row| row.id).collect::<Vec<_>>(),
        vec![critical]
    );

    let by_search = Filter {
        search: Some("site-change_set".to_string()),
        ..Filter::default()
    };
    let rows = dead_letters::list(&pool, Some(mine), &by_search)
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|row| row.id).collect::<Vec<_>>(),
        vec![critical]
    );

    let wildcard = Filter {
        search: Some("%".to_string()),
        ..Filter::default()
    };
    let rows = dead_letters::list(&pool, Some(mine), &wildcard)
        .await
        .unwrap();
    assert!(rows.is_empty(), "% is matched literally, not as a wildcard");

    let today = time::OffsetDateTime::now_utc().date();
    let by_date = Filter {
        from: Some(today),
        ..Filter::default()
    };
    let rows = dead_letters::list(&pool, Some(mine), &by_date)
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|row| row.id).collect::<Vec<_>>(),
        vec![network]
    );

    let stats = dead_letters::stats(&pool, Some(mine)).await.unwrap();
    assert_eq!(stats.open, 2);
    assert_eq!(stats.open_critical, 1);
    assert_eq!(stats.last_7_days.len(), 7);
    assert_eq!(
        stats.last_7_days.iter().map(|day| day.count).sum::<i64>(),
        2
    );
}

#[tokio::test]
async fn discard_needs_reason_and_is_audited() {
    let pool = fresh_pool().await;
    let tenant = tenant(&pool, "discards").await;
    let id = dead_letter(
        &pool,
        Some(tenant),
        "a.fetch",
        ErrorClass::Permanent,
        false,
        0,
    )
    .await;

    let empty = dead_letters::discard(&pool, Some(tenant), id, "  ", &operator()).await;
    assert!(matches!(empty, Err(ActionError::Invalid(_))), "{empty:?}");
    let long = "x".repeat(501);
    let too_long = dead_letters::discard(&pool, Some(tenant), id, &long, &operator()).await;
    assert!(
        matches!(too_long, Err(ActionError::Invalid(_))),
        "{too_long:?}"
    );

    let other = self::tenant(&pool, "strangers").await;
    let foreign = dead_letters::discard(&pool, Some(other), id, "not mine", &operator()).await;
    assert!(
        matches!(foreign, Err(ActionError::NotFound(_))),
        "{foreign:?}"
    );

    dead_letters::discard(&pool, Some(tenant), id, "source removed", &operator())
        .await
        .unwrap();
    let again = dead_letters::discard(&pool, Some(tenant), id, "twice", &operator()).await;
    assert!(
        matches!(again, Err(ActionError::NotOpen { .. })),
        "{again:?}"
    );
    let retry = dead_letters::retry(&pool, Some(tenant), &[id], &operator())
        .await
        .unwrap();
    assert!(retry.retried.is_empty());
    assert_eq!(retry.skipped, vec![id]);

    let detail = dead_letters::get(&pool, Some(tenant), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.summary.status, "discarded");
    assert_eq!(detail.discard_reason.as_deref(), Some("source removed"));
    assert_eq!(detail.job_status, "discarded");

    let trail = backend::audit::list(&pool, tenant, Some(&id.to_string()), None, 10)
        .await
        .unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].action, "dead_letter.discard");
    assert_eq!(trail[0].detail["reason"], "source removed");
    assert_eq!(trail[0].correlation_id.as_deref(), Some("corr-action"));
}

#[tokio::test]
async fn retry_rejects_empty_and_oversized_selections() {
    let pool = fresh_pool().await;
    let tenant = tenant(&pool, "selections").await;
    let empty = dead_letters::retry(&pool, Some(tenant), &[], &operator()).await;
    assert!(matches!(empty, Err(ActionError::Invalid(_))), "{empty:?}");
    let many: Vec<Uuid> = (0..1001).map(|_| Uuid::now_v7()).collect();
    let oversized = dead_letters::retry(&pool, Some(tenant), &many, &operator()).await;
    assert!(
        matches!(oversized, Err(ActionError::Invalid(_))),
        "{oversized:?}"
    );
}

#[tokio::test]
async fn prune_enforces_retention_and_cap() {
    let pool = fresh_pool().await;
    let tenant = tenant(&pool, "pruned").await;
    let expired = dead_letter(&pool, Some(tenant), "a.old", ErrorClass::Network, true, 40).await;
    let old_critical =
        dead_letter(&pool, Some(tenant), "a.crit", ErrorClass::Network, true, 5).await;
    let oldest_plain = dead_letter(
        &pool,
        Some(tenant),
        "a.plain",
        ErrorClass::Network,
        false,
        4,
    )
    .await;
    let older_plain = dead_letter(
        &pool,
        Some(tenant),
        "a.plain",
        ErrorClass::Network,
        false,
        3,
    )
    .await;
    let newest_plain = dead_letter(
        &pool,
        Some(tenant),
        "a.plain",
        ErrorClass::Network,
        false,
        1,
    )
    .await;

    let report = dead_letters::prune(&pool, Duration::from_secs(30 * 86_400), 2)
        .await
        .unwrap();
    assert_eq!(report.expired, 1);
    assert_eq!(report.over_cap, 2);

    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM dead_letters ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!left.contains(&expired), "past retention");
    assert!(
        !left.contains(&oldest_plain),
        "oldest non-critical goes first"
    );
    assert!(
        !left.contains(&older_plain),
        "then the next oldest non-critical"
    );
    assert!(
        left.contains(&old_critical),
        "critical kept while non-critical remain"
    );
    assert!(left.contains(&newest_plain));
}
