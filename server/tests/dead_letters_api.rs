//! The dead-letter and audit REST routes: roles, tenant isolation, validation, and the audit
//! entries that admin actions leave.

mod common;

use std::time::Duration;

use backend::jobs::demo::{DemoArgs, DEMO_KIND};
use backend::jobs::{JobSettings, NewJob};
use common::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// Runs failing demo jobs for tenant `slug` through a real worker; returns their dead letters.
async fn dead_letters_for(app: &TestApp, slug: &str, count: usize) -> Vec<String> {
    let tenant: Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let args = serde_json::to_value(DemoArgs {
        data: Some(json!({ "site": format!("SITE-{slug}") })),
        ..DemoArgs::default()
    })
    .unwrap();
    for _ in 0..count {
        let job = NewJob::new(DEMO_KIND, args.clone(), "api-test").tenant(tenant);
        backend::jobs::enqueue_now(&app.pool, job).await.unwrap();
    }
    let settings = JobSettings {
        demo_jobs: true,
        poll_interval: Duration::from_millis(100),
        ..JobSettings::default()
    };
    let workers = tokio::spawn(server::workers::run(
        app.pool.clone(),
        settings,
        std::future::pending(),
    ));
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids = sqlx::query_scalar(
            "SELECT id::text FROM dead_letters WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(tenant)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        if ids.len() == count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    workers.abort();
    assert_eq!(ids.len(), count, "dead letters of {slug}");
    ids
}

#[tokio::test]
async fn only_admins_of_the_tenant_see_dead_letters() {
    let app = TestApp::spawn().await;
    app.tenant("north").await;
    app.tenant("south").await;
    let ids = dead_letters_for(&app, "north", 2).await;
    let admin = app.token("admin@north.test").await;
    let manager = app.token("manager@north.test").await;
    let stranger = app.token("admin@south.test").await;

    let response = app.get_as(&admin, "/api/v1/dead-letters").await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["kind"], "demo.fail");

    let response = app.get_as(&manager, "/api/v1/dead-letters").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let response = app.get_as(&stranger, "/api/v1/dead-letters").await;
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["items"], json!([]), "another tenant sees none");
    let response = app
        .get_as(&stranger, &format!("/api/v1/dead-letters/{}", ids[0]))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = app
        .get_as(&admin, &format!("/api/v1/dead-letters/{}", ids[0]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let detail: Value = response.json().await.unwrap();
    assert_eq!(detail["error_class"], "permanent");
    assert_eq!(detail["correlation_id"], "api-test");
    assert_eq!(detail["payload"]["data"]["site"], "SITE-north");
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1);
    assert!(detail["error_chain"][0]
        .as_str()
        .unwrap()
        .contains("demo failure on attempt 1"));

    let response = app
        .get_as(
            &admin,
            "/api/v1/dead-letters?q=site-north&class=permanent&limit=1",
        )
        .await;
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(
        page["next_cursor"].is_string(),
        "a full page has a cursor: {page}"
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let response = app
        .get_as(
            &admin,
            &format!("/api/v1/dead-letters?limit=1&cursor={cursor}"),
        )
        .await;
    let next: Value = response.json().await.unwrap();
    assert_eq!(next["items"].as_array().unwrap().len(), 1);
    assert_ne!(next["items"][0]["id"], page["items"][0]["id"]);

    let stats: Value = app
        .get_as(&admin, "/api/v1/dead-letters/stats")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["open"], 2);
    assert_eq!(stats["by_kind_class"][0]["count"], 2);
}

#[tokio::test]
async fn invalid_filters_name_the_value() {
    let app = TestApp::spawn().await;
    app.tenant("filters").await;
    let admin = app.token("admin@filters.test").await;
    for (query, field, value) in [
        ("class=flaky", "class", "flaky"),
        ("critical=maybe", "critical", "maybe"),
        ("status=gone", "status", "gone"),
        ("from=04-12-2026", "from", "04-12-2026"),
        ("limit=0", "limit", "0"),
        ("cursor=abc", "cursor", "abc"),
    ] {
        let response = app
            .get_as(&admin, &format!("/api/v1/dead-letters?{query}"))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["field"], field, "{query}: {body}");
        assert_eq!(body["value"], value, "{query}: {body}");
    }
    let response = app.get_as(&admin, "/api/v1/dead-letters/not-a-uuid").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn discard_and_retry_are_audited() {
    let app = TestApp::spawn().await;
    app.tenant("audited").await;
    let ids = dead_letters_for(&app, "audited", 2).await;
    let admin = app.token("admin@audited.test").await;

    let path = format!("/api/v1/dead-letters/{}/discard", ids[0]);
    let response = app.post_as(&admin, &path, &json!({ "reason": "" })).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = app
        .post_as(
            &admin,
            &path,
            &json!({ "reason": "duplicate of a later job" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app
        .post_as(&admin, &path, &json!({ "reason": "again" }))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);

    let response = app
        .post_as(&admin, "/api/v1/dead-letters/retry", &json!({ "ids": ids }))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["retried"], json!([ids[1]]));
    assert_eq!(report["skipped"], json!([ids[0]]));
    let response = app
        .post_as(
            &admin,
            "/api/v1/dead-letters/retry",
            &json!({ "ids": ["nope"] }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let (trail, actions) = app.audit_trail(&admin).await;
    assert_eq!(actions, vec!["dead_letter.retry", "dead_letter.discard"]);
    assert_eq!(trail[1]["actor"], "admin@audited.test");
    assert_eq!(trail[1]["subject_id"], ids[0]);
    assert!(trail[1]["ip"].as_str().unwrap().starts_with("127.0.0.1"));
    assert!(trail[1]["correlation_id"].is_string());

    let verification: Value = app
        .get_as(&admin, "/api/v1/audit/verify")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verification["intact"], true);
    assert_eq!(verification["rows"], 2);
}
