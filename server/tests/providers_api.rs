//! `GET /api/v1/providers` and the Providers page: roles, tenant isolation and the numbers of
//! recorded calls and breakers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use backend::accounts::Role;
use backend::ids::TenantId;
use backend::jobs::ErrorClass;
use backend::providers::breaker::{self, CallOutcome};
use backend::providers::calls::{self, CallRecord, Operation};
use backend::providers::settings::{parse_base_url, PriceTable, ProviderSettings};
use backend::providers::{AnthropicConfig, Gateway, OpenAiConfig, ProviderKind, Secret};
use backend::settings::Settings;
use common::{session_cookie, TestApp};
use reqwest::StatusCode;
use serde_json::Value;

const BUDGET: u64 = 10_000;

/// Starts the app with an OpenAI-compatible and an Anthropic provider in the chain. Their base
/// URLs point at a closed port on 127.0.0.1: the tests record calls directly and never send one.
async fn spawn_with_providers() -> TestApp {
    let settings = ProviderSettings {
        chain: vec![ProviderKind::OpenAiCompatible, ProviderKind::Anthropic],
        openai: Some(OpenAiConfig::new(
            parse_base_url("http://127.0.0.1:9/v1").unwrap(),
            "gpt-fake",
        )),
        anthropic: Some(AnthropicConfig::new(
            parse_base_url("http://127.0.0.1:9").unwrap(),
            Secret::new("sk-ant-api-test-key"),
            "claude-fake",
        )),
        monthly_token_budget: BUDGET,
        prices: PriceTable::parse("gpt-fake=1/2").unwrap(),
        ..ProviderSettings::default()
    };
    TestApp::spawn_customized(Settings::default(), |pool, state| {
        let gateway = Gateway::from_settings(pool.clone(), &settings).unwrap();
        state.with_providers(Arc::new(gateway))
    })
    .await
}

async fn tenant_id(app: &TestApp, slug: &str) -> TenantId {
    let id = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    TenantId(id)
}

/// Records one chat call through the same function the gateway uses.
async fn record(
    app: &TestApp,
    tenant: TenantId,
    provider: ProviderKind,
    latency_ms: u64,
    failure: Option<ErrorClass>,
) {
    let model = match provider {
        ProviderKind::OpenAiCompatible => "gpt-fake",
        ProviderKind::Anthropic => "claude-fake",
        ProviderKind::Offline => "offline-rules",
    };
    let hash = "ab".repeat(32);
    calls::record(
        &app.pool,
        &CallRecord {
            tenant,
            provider,
            operation: Operation::Chat,
            model,
            template: "maker",
            prompt_hash: &hash,
            attempt: 1,
            input_tokens: 1_000,
            output_tokens: 500,
            cost_usd: (provider == ProviderKind::OpenAiCompatible).then_some(0.002),
            latency: Duration::from_millis(latency_ms),
            failure,
            error: failure.map(|_| "request to the provider failed with HTTP status 500"),
            fallback_reason: None,
            correlation_id: "corr-api-test",
        },
    )
    .await
    .unwrap();
}

/// Opens the OpenAI breaker of `tenant` with three counted failures.
async fn open_breaker(app: &TestApp, tenant: TenantId) {
    let settings = backend::providers::settings::BreakerSettings::default();
    for _ in 0..3 {
        breaker::finish(
            &app.pool,
            tenant,
            ProviderKind::OpenAiCompatible,
            CallOutcome::Failure,
            false,
            &settings,
        )
        .await
        .unwrap();
    }
}

fn provider<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|provider| provider["provider"] == name)
        .unwrap_or_else(|| panic!("provider {name} missing from {body}"))
}

#[tokio::test]
async fn providers_api_reports_recorded_calls() {
    let app = spawn_with_providers().await;
    let acme = app.tenant("acme").await;
    let other = app.tenant("other").await;
    let acme_id = tenant_id(&app, "acme").await;
    let other_id = tenant_id(&app, "other").await;
    for (latency, failure) in [
        (100, None),
        (200, None),
        (300, Some(ErrorClass::ModelProvider)),
        (400, None),
    ] {
        record(
            &app,
            acme_id,
            ProviderKind::OpenAiCompatible,
            latency,
            failure,
        )
        .await;
    }
    record(&app, acme_id, ProviderKind::Anthropic, 900, None).await;
    record(&app, other_id, ProviderKind::OpenAiCompatible, 5_000, None).await;
    open_breaker(&app, acme_id).await;
    let token = app.token(&acme.email(Role::Admin)).await;

    let response = app.get_as(&token, "/api/v1/providers").await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let names: Vec<&str> = body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|provider| provider["provider"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["openai_compatible", "anthropic", "offline"]);

    let openai = provider(&body, "openai_compatible");
    assert_eq!(openai["model"], "gpt-fake");
    assert_eq!(openai["breaker"]["state"], "open");
    assert_eq!(openai["breaker"]["recent_failures"], 3);
    assert!(openai["breaker"]["reopens_at"].is_string(), "{openai}");
    assert_eq!(openai["last_hour"]["calls"], 4);
    assert_eq!(openai["last_hour"]["errors"], 1);
    // Continuous percentiles of 100, 200, 300 and 400 ms.
    assert_eq!(openai["last_hour"]["p50_ms"], 250.0);
    assert_eq!(openai["last_hour"]["p95_ms"], 385.0);
    assert_eq!(openai["last_hour"]["p99_ms"], 397.0);
    let series = openai["series"].as_array().unwrap();
    assert_eq!(series.len(), 12);
    let bucketed: i64 = series
        .iter()
        .map(|bucket| bucket["calls"].as_i64().unwrap())
        .sum();
    assert_eq!(bucketed, 4);
    assert_eq!(series[11]["calls"], 4, "the newest bucket holds the calls");
    assert_eq!(series[11]["errors"], 1);
    assert_eq!(openai["recent_errors"].as_array().unwrap().len(), 1);
    assert_eq!(openai["recent_errors"][0]["outcome"], "model_provider");

    let anthropic = provider(&body, "anthropic");
    assert_eq!(anthropic["breaker"]["state"], "closed");
    assert_eq!(anthropic["last_hour"]["calls"], 1);
    assert_eq!(anthropic["last_hour"]["p99_ms"], 900.0);
    let offline = provider(&body, "offline");
    assert!(offline["breaker"].is_null());
    assert_eq!(offline["last_hour"]["calls"], 0);
    assert!(offline["last_hour"]["p50_ms"].is_null());

    let budget = &body["budget"];
    assert_eq!(budget["tokens"], 7_500);
    assert_eq!(budget["limit_tokens"], BUDGET);
    assert_eq!(budget["used_percent"], 75.0);
    assert_eq!(
        budget["unpriced_calls"], 1,
        "the anthropic call has no price"
    );
    let cost = budget["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.008).abs() < 1e-9, "{cost}");

    // The other tenant's admin gets only that tenant's call and a closed breaker.
    let other_token = app.token(&other.email(Role::Admin)).await;
    let body: Value = app
        .get_as(&other_token, "/api/v1/providers")
        .await
        .json()
        .await
        .unwrap();
    let openai = provider(&body, "openai_compatible");
    assert_eq!(openai["breaker"]["state"], "closed");
    assert_eq!(openai["last_hour"]["calls"], 1);
    assert_eq!(body["budget"]["tokens"], 1_500);
}

#[tokio::test]
async fn providers_api_is_admin_only() {
    let app = spawn_with_providers().await;
    let acme = app.tenant("acme").await;

    for role in [Role::Manager, Role::Approver] {
        let token = app.token(&acme.email(role)).await;
        let response = app.get_as(&token, "/api/v1/providers").await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    let anonymous = reqwest::get(app.url("/api/v1/providers")).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn openapi_describes_providers() {
    let app = spawn_with_providers().await;

    let body: Value = reqwest::get(app.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert!(
        body["paths"]["/api/v1/providers"]["get"].is_object(),
        "{}",
        body["paths"]
    );
    assert!(body["components"]["schemas"]["ProvidersOverview"].is_object());
}

/// Signs in through the login server function and returns a client carrying the session.
async fn signed_in(app: &TestApp, email: &str, password: &str) -> reqwest::Client {
    let browser = app.browser();
    let login = app.login(&browser, email, password).await;
    assert!(
        session_cookie(&login).is_some(),
        "sign-in as {email} failed"
    );
    browser
}

#[tokio::test]
async fn providers_page_renders_for_admin() {
    let app = spawn_with_providers().await;
    let acme = app.tenant("acme").await;
    let acme_id = tenant_id(&app, "acme").await;
    record(&app, acme_id, ProviderKind::OpenAiCompatible, 120, None).await;
    record(
        &app,
        acme_id,
        ProviderKind::OpenAiCompatible,
        480,
        Some(ErrorClass::Network),
    )
    .await;
    open_breaker(&app, acme_id).await;
    let admin = signed_in(&app, &acme.email(Role::Admin), &acme.password).await;

    let response = admin.get(app.url("/admin/providers")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("Model providers"), "{html}");
    for card in [
        "provider-openai_compatible",
        "provider-anthropic",
        "provider-offline",
    ] {
        assert!(html.contains(card), "card {card} missing");
    }
    assert!(html.contains("Breaker open"), "the open breaker is shown");
    assert!(html.contains("Open until"), "the reopen time is shown");
    assert!(html.contains("data-testid=\"hour-chart\""));
    assert!(html.contains("data-testid=\"budget-bar\""));
    // OpenAI's latency chart draws both percentiles and the highest p95 sets the scale.
    // Anthropic has no calls, so its card shows the empty-chart message.
    let openai_card = card_html(&html, "provider-openai_compatible");
    assert!(
        openai_card.contains("data-testid=\"latency-chart\""),
        "{openai_card}"
    );
    assert!(
        openai_card.contains("class=\"pv-line-p95\""),
        "{openai_card}"
    );
    assert!(
        openai_card.contains("class=\"pv-line-p50\""),
        "{openai_card}"
    );
    // p95 of 120 and 480 ms is 462 ms; 480 ms if the two calls fell on a bucket boundary.
    assert!(
        openai_card.contains("top of the scale 462 ms")
            || openai_card.contains("top of the scale 480 ms"),
        "{openai_card}"
    );
    assert!(card_html(&html, "provider-anthropic").contains("latency-chart-empty"));
    assert!(!html.contains("data-testid=\"budget-exhausted\""));
    assert!(
        html.contains("3,000 of 10,000 tokens used"),
        "the budget summary is shown"
    );
    assert!(html.contains("Newest errors (1)"));
    assert!(
        html.contains("href=\"/admin/providers\""),
        "the navigation links the page"
    );
}

/// Returns the HTML of one provider card, from its opening tag to the next card's.
fn card_html<'a>(html: &'a str, testid: &str) -> &'a str {
    let start = html
        .find(&format!("data-testid=\"{testid}\""))
        .unwrap_or_else(|| panic!("card {testid} missing"));
    let rest = &html[start..];
    let end = rest[1..].find("<article").map_or(rest.len(), |at| at + 1);
    &rest[..end]
}

#[tokio::test]
async fn providers_page_shows_exhausted_budget() {
    let app = spawn_with_providers().await;
    let acme = app.tenant("acme").await;
    let acme_id = tenant_id(&app, "acme").await;
    // Each recorded call uses 1,500 tokens: seven use 10,500 of the 10,000 budget.
    for _ in 0..7 {
        record(&app, acme_id, ProviderKind::Anthropic, 200, None).await;
    }
    let admin = signed_in(&app, &acme.email(Role::Admin), &acme.password).await;

    let html = admin
        .get(app.url("/admin/providers"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert!(html.contains("data-testid=\"budget-exhausted\""), "{html}");
    assert!(html.contains("The budget is used up"));
    assert!(html.contains("10,500 of 10,000 tokens used"), "{html}");
    assert!(html.contains("pv-budget-full"));

    let api: Value = app
        .get_as(
            &app.token(&acme.email(Role::Admin)).await,
            "/api/v1/providers",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(api["budget"]["tokens"], 10_500);
    assert_eq!(api["budget"]["used_percent"], 105.0);
}

#[tokio::test]
async fn providers_page_refused_to_manager() {
    let app = spawn_with_providers().await;
    let acme = app.tenant("acme").await;
    let manager = signed_in(&app, &acme.email(Role::Manager), &acme.password).await;

    let response = manager
        .get(app.url("/admin/providers"))
        .send()
        .await
        .unwrap();

    let html = response.text().await.unwrap();
    assert!(html.contains("Not available to your account"), "{html}");
    assert!(!html.contains("provider-openai_compatible"));
    assert!(
        !html.contains("href=\"/admin/providers\""),
        "managers get no link"
    );

    // The server function refuses a manager that calls it directly.
    let direct = manager
        .post(app.url("/sfn/providers"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), StatusCode::FORBIDDEN);
}
