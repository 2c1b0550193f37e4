//! The REST API and the security rules at its edge, through real HTTP.

mod common;

use backend::accounts::Role;
use common::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn me_with_token_answers_tenant_and_roles() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = app.token(&tenant.email(Role::Approver)).await;

    let response = app.get_as(&token, "/api/v1/me").await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tenant_slug"], "acme");
    assert_eq!(body["email"], "approver@acme.test");
    assert_eq!(body["roles"], json!(["approver"]));
}

#[tokio::test]
async fn me_without_credentials_answers_401() {
    let app = TestApp::spawn().await;
    let response = reqwest::get(app.url("/api/v1/me")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Bearer"));

    let forged = reqwest::Client::new()
        .get(app.url("/api/v1/me"))
        .bearer_auth("slt_not-a-real-token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn invalid_uuid_answers_400_naming_field() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = app.token(&tenant.email(Role::Manager)).await;

    let response = app.get_as(&token, "/api/v1/conversations/not-a-uuid").await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["field"], "id");
    assert_eq!(body["value"], "not-a-uuid");
    assert!(body["error"].as_str().unwrap().contains("UUID"));
}

#[tokio::test]
async fn oversized_json_answers_413() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = app.token(&tenant.email(Role::Manager)).await;
    let body = json!({"site_code": "WH-01", "conversation_type": "new_site", "padding": "x".repeat(300 * 1024)});

    let response = app.post_as(&token, "/api/v1/conversations", &body).await;

    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("limit"));
}

#[tokio::test]
async fn cookie_post_from_other_origin_answers_403() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let browser = app.browser();
    let login = app
        .login(&browser, &tenant.email(Role::Manager), &tenant.password)
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let request = json!({"site_code": "WH-01", "conversation_type": "new_site"});

    let evil = browser
        .post(app.url("/api/v1/conversations"))
        .header("origin", "https://evil.example")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    let body: Value = evil.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("evil.example"));

    let cross_site = browser
        .post(app.url("/sfn/logout"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);

    // The same request from this site goes through, so the refusals above were about origin.
    let same = browser
        .post(app.url("/api/v1/conversations"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn bearer_request_is_exempt_from_origin_check() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = app.token(&tenant.email(Role::Manager)).await;

    let response = reqwest::Client::new()
        .post(app.url("/api/v1/conversations"))
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .json(&json!({"site_code": "WH-01", "conversation_type": "new_site"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn conversation_start_then_conflict_names_active() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = app.token(&tenant.email(Role::Manager)).await;
    let body = json!({"site_code": "wh-01", "conversation_type": "new_site"});

    let first = app.post_as(&token, "/api/v1/conversations", &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let created: Value = first.json().await.unwrap();
    assert_eq!(created["site_code"], "WH-01");
    assert_eq!(created["state"], "started");

    let second = app.post_as(&token, "/api/v1/conversations", &body).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let conflict: Value = second.json().await.unwrap();
    assert_eq!(conflict["existing_id"], created["id"]);

    let id = created["id"].as_str().unwrap();
    let fetched = app
        .get_as(&token, &format!("/api/v1/conversations/{id}"))
        .await;
    assert_eq!(fetched.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_body_answers_400_naming_field() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let token = app.token(&tenant.email(Role::Manager)).await;

    let response = app
        .post_as(
            &token,
            "/api/v1/conversations",
            &json!({"site_code": "WH 01", "conversation_type": "new_site"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["field"], "site_code");
    assert_eq!(body["value"], "WH 01");

    let wrong_type = app
        .post_as(
            &token,
            "/api/v1/conversations",
            &json!({"site_code": "WH-01", "conversation_type": "castle"}),
        )
        .await;
    assert_eq!(wrong_type.status(), StatusCode::BAD_REQUEST);
    let body: Value = wrong_type.json().await.unwrap();
    assert_eq!(body["field"], "conversation_type");
}

#[tokio::test]
async fn other_tenant_ids_answer_404() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let acme_manager = app.token(&acme.email(Role::Manager)).await;
    let globex_admin = app.token(&globex.email(Role::Admin)).await;
    let globex_manager = app.token(&globex.email(Role::Manager)).await;

    let created: Value = app
        .post_as(
            &acme_manager,
            "/api/v1/conversations",
            &json!({"site_code": "WH-01", "conversation_type": "new_site"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let conversation = created["id"].as_str().unwrap();
    let acme_user: String = sqlx::query_scalar("SELECT id::text FROM users WHERE email = $1")
        .bind(acme.email(Role::Manager))
        .fetch_one(&app.pool)
        .await
        .unwrap();

    let foreign_conversation = app
        .get_as(
            &globex_manager,
            &format!("/api/v1/conversations/{conversation}"),
        )
        .await;
    assert_eq!(foreign_conversation.status(), StatusCode::NOT_FOUND);

    let foreign_user = app
        .get_as(&globex_admin, &format!("/api/v1/users/{acme_user}"))
        .await;
    assert_eq!(foreign_user.status(), StatusCode::NOT_FOUND);

    // The same ids return 200 inside their own tenant.
    let acme_admin = app.token(&acme.email(Role::Admin)).await;
    let own_user = app
        .get_as(&acme_admin, &format!("/api/v1/users/{acme_user}"))
        .await;
    assert_eq!(own_user.status(), StatusCode::OK);
}

#[tokio::test]
async fn roles_are_enforced() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let approver = app.token(&tenant.email(Role::Approver)).await;
    let manager = app.token(&tenant.email(Role::Manager)).await;

    let start = app
        .post_as(
            &approver,
            "/api/v1/conversations",
            &json!({"site_code": "WH-01", "conversation_type": "new_site"}),
        )
        .await;
    assert_eq!(start.status(), StatusCode::FORBIDDEN);
    let body: Value = start.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("manager role"));

    let users = app
        .get_as(&manager, &format!("/api/v1/users/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(users.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn health_readiness_metrics_and_request_id() {
    let app = TestApp::spawn().await;

    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let generated = health.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");

    let ready = reqwest::Client::new()
        .get(app.url("/readyz"))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.headers()["x-request-id"], "trace-abc.123");

    let hostile = reqwest::Client::new()
        .get(app.url("/healthz"))
        .header("x-request-id", "has spaces and ; semicolons")
        .send()
        .await
        .unwrap();
    assert_ne!(
        hostile.headers()["x-request-id"],
        "has spaces and ; semicolons"
    );

    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
}

#[tokio::test]
async fn readiness_fails_when_migrations_missing() {
    let app = TestApp::spawn().await;
    sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(&app.pool)
        .await
        .unwrap();

    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("server migrate"));
}

#[tokio::test]
async fn openapi_lists_routes() {
    let app = TestApp::spawn().await;
    let spec: Value = reqwest::get(app.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/me",
        "/api/v1/conversations",
        "/api/v1/conversations/{id}",
        "/api/v1/users/{id}",
    ] {
        assert!(spec["paths"].get(path).is_some(), "missing {path}");
    }
    assert!(spec["components"]["securitySchemes"]
        .get("bearer")
        .is_some());
}

#[tokio::test]
async fn unknown_api_route_answers_json_404() {
    let app = TestApp::spawn().await;
    let response = reqwest::get(app.url("/api/v1/nothing-here")).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("openapi.json"));
}

#[tokio::test]
async fn url_check_names_the_refusal() {
    let app = TestApp::spawn().await;
    app.tenant("guard").await;
    let admin = app.token("admin@guard.test").await;
    let manager = app.token("manager@guard.test").await;

    // IP literals only: the check resolves names, and tests make no real lookups. Knowledge
    // sources are https only by default, so each URL but the bad-scheme one uses https.
    for (url, reason) in [
        ("https://10.0.0.5/manual.pdf", "private_address"),
        (
            "https://169.254.169.254/latest/meta-data/",
            "metadata_address",
        ),
        ("https://0x7f.1/", "loopback_address"),
        ("https://[::ffff:192.168.0.1]/", "private_address"),
        ("ftp://93.184.216.34/file", "bad_scheme"),
        ("https://93.184.216.34:8080/", "port_not_allowed"),
        ("not a url", "invalid_url"),
    ] {
        let response = app
            .post_as(
                &admin,
                "/api/v1/knowledge/url-check",
                &json!({ "url": url }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let verdict: Value = response.json().await.unwrap();
        assert_eq!(verdict["allowed"], false, "{url}: {verdict}");
        assert_eq!(verdict["reason"], reason, "{url}: {verdict}");
        assert!(
            verdict["message"].as_str().unwrap().contains("refused URL"),
            "{verdict}"
        );
    }

    let response = app
        .post_as(
            &admin,
            "/api/v1/knowledge/url-check",
            &json!({ "url": "https://93.184.216.34/doc" }),
        )
        .await;
    let verdict: Value = response.json().await.unwrap();
    assert_eq!(verdict, json!({ "allowed": true }));

    let response = app
        .post_as(
            &manager,
            "/api/v1/knowledge/url-check",
            &json!({ "url": "https://10.0.0.5/" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}
