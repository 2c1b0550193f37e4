//! The provider gateway against fake OpenAI-compatible and Anthropic servers on 127.0.0.1 and a
//! fresh PostgreSQL database: fallback, repair, 429 cooldowns, rate limits, circuit breakers
//! shared between processes, the monthly budget, call records and key redaction.

#[path = "support/fake_providers.rs"]
#[allow(dead_code)]
mod fake_providers;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend::accounts;
use backend::ids::TenantId;
use backend::jobs::{ErrorClass, JobSettings};
use backend::providers::gateway::{OfflineCause, SkipReason};
use backend::providers::output::{parse_validated, Validate, Violations};
use backend::providers::settings::{BreakerSettings, PriceTable, ProviderSettings, RateLimits};
use backend::providers::{
    Answer, AnthropicConfig, ChatRequest, Gateway, GatewayError, OpenAiConfig, ProviderKind, Secret,
};
use backend::testing::fresh_pool;
use fake_providers::{FakeServer, Flavor, Reply};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use url::Url;

const OPENAI_KEY: &str = "sk-gateway-openai-0123456789KEYVALUE";
const ANTHROPIC_KEY: &str = "sk-ant-gateway-9876543210KEYVALUE";
const TEMPLATE: &str = "maker";
const CORRELATION: &str = "corr-provider-test";

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ZonePlan {
    zones: Vec<Zone>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Zone {
    code: String,
    kind: String,
    confidence: f64,
}

impl Validate for ZonePlan {
    fn validate(&self, errors: &mut Violations) {
        for (index, zone) in self.zones.iter().enumerate() {
            errors.text(&format!("zones[{index}].code"), &zone.code, 32);
            errors.one_of(
                &format!("zones[{index}].kind"),
                &zone.kind,
                &["gate", "lobby", "vault", "parking"],
            );
            errors.range(
                &format!("zones[{index}].confidence"),
                zone.confidence,
                0.0,
                1.0,
            );
        }
    }
}

fn request() -> ChatRequest {
    ChatRequest::new(
        "You propose zones for a site.",
        "<<<USER_MESSAGE id=1 flagged=false>>>\nWe have a main gate.\n<<<END>>>",
        "zone_plan",
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["zones"],
            "properties": {"zones": {"type": "array", "items": {"type": "object"}}}
        }),
    )
}

fn valid_plan() -> Value {
    json!({"zones": [{"code": "GATE-1", "kind": "gate", "confidence": 0.9}]})
}

fn invalid_plan() -> Value {
    json!({"zones": [{"code": "GATE-1", "kind": "moat", "confidence": 1.7}]})
}

/// Settings with unlimited rates and budget and a short open period, so tests choose what they
/// limit.
fn settings(openai: Option<&FakeServer>, anthropic: Option<&FakeServer>) -> ProviderSettings {
    settings_for(
        openai.map(|server| &server.base_url),
        anthropic.map(|server| &server.base_url),
    )
}

/// [`settings`] for servers known only by their base URLs, as a child process receives them.
fn settings_for(openai: Option<&Url>, anthropic: Option<&Url>) -> ProviderSettings {
    let mut chain = Vec::new();
    let openai = openai.map(|base_url| {
        chain.push(ProviderKind::OpenAiCompatible);
        let mut config =
            OpenAiConfig::new(base_url.clone(), "gpt-fake").with_api_key(Secret::new(OPENAI_KEY));
        config.embedding_model = Some("embed-fake".to_string());
        config
    });
    let anthropic = anthropic.map(|base_url| {
        chain.push(ProviderKind::Anthropic);
        AnthropicConfig::new(base_url.clone(), Secret::new(ANTHROPIC_KEY), "claude-fake")
    });
    ProviderSettings {
        chain,
        openai,
        anthropic,
        breaker: BreakerSettings {
            failure_threshold: 3,
            failure_window: Duration::from_secs(300),
            open_for: Duration::from_secs(2),
            probe_lease: Duration::from_secs(30),
        },
        rate_limits: RateLimits {
            requests_per_minute: 0,
            tokens_per_minute: 0,
        },
        monthly_token_budget: 0,
        prices: PriceTable::parse("gpt-fake=1.00/2.00,claude-fake=3.00/15.00").unwrap(),
    }
}

fn gateway(pool: &PgPool, settings: &ProviderSettings) -> Gateway {
    Gateway::from_settings(pool.clone(), settings).expect("the test settings are valid")
}

async fn tenant(pool: &PgPool, slug: &str) -> TenantId {
    accounts::create_tenant(pool, slug, &format!("Tenant {slug}"))
        .await
        .unwrap()
        .id
}

/// Waits for the next minute when fewer than 3 seconds of this one are left, so that two
/// calls of a rate-limit test land in the same per-minute window.
async fn avoid_minute_boundary(pool: &PgPool) {
    let second: f64 = sqlx::query_scalar("SELECT extract(second FROM now())::float8")
        .fetch_one(pool)
        .await
        .unwrap();
    if second > 57.0 {
        tokio::time::sleep(Duration::from_secs_f64(60.5 - second)).await;
    }
}

async fn chat(gateway: &Gateway, tenant: TenantId) -> Answer<ZonePlan> {
    gateway
        .chat(
            tenant,
            TEMPLATE,
            &request(),
            CORRELATION,
            parse_validated::<ZonePlan>,
        )
        .await
        .expect("the gateway's bookkeeping works")
}

fn expect_model(answer: Answer<ZonePlan>) -> backend::providers::ModelAnswer<ZonePlan> {
    match answer {
        Answer::Model(answer) => answer,
        Answer::Offline(reason) => panic!("expected a model answer, got offline: {reason}"),
    }
}

fn expect_offline(answer: Answer<ZonePlan>) -> backend::providers::OfflineReason {
    match answer {
        Answer::Offline(reason) => reason,
        Answer::Model(answer) => panic!("expected offline, got {:?}", answer.provider),
    }
}

/// One recorded call, as the tests read it.
#[derive(Debug)]
struct CallRow {
    provider: String,
    operation: String,
    model: String,
    template: String,
    prompt_hash: String,
    attempt: i16,
    input_tokens: i32,
    output_tokens: i32,
    cost_usd: Option<f64>,
    latency_ms: i32,
    outcome: String,
    error: Option<String>,
    fallback_reason: Option<String>,
    correlation_id: String,
}

async fn calls(pool: &PgPool) -> Vec<CallRow> {
    sqlx::query(
        "SELECT provider, operation, model, template, prompt_hash, attempt, input_tokens, \
                output_tokens, cost_usd::float8 AS cost_usd, latency_ms, outcome, error, \
                fallback_reason, correlation_id \
           FROM provider_calls ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|row| CallRow {
        provider: row.get("provider"),
        operation: row.get("operation"),
        model: row.get("model"),
        template: row.get("template"),
        prompt_hash: row.get("prompt_hash"),
        attempt: row.get("attempt"),
        input_tokens: row.get("input_tokens"),
        output_tokens: row.get("output_tokens"),
        cost_usd: row.get("cost_usd"),
        latency_ms: row.get("latency_ms"),
        outcome: row.get("outcome"),
        error: row.get("error"),
        fallback_reason: row.get("fallback_reason"),
        correlation_id: row.get("correlation_id"),
    })
    .collect()
}

async fn breaker_state(pool: &PgPool, tenant: TenantId, provider: &str) -> Option<String> {
    sqlx::query_scalar("SELECT state FROM provider_breakers WHERE tenant_id = $1 AND provider = $2")
        .bind(tenant.0)
        .bind(provider)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn openai_answer_is_recorded() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let server = FakeServer::start(Flavor::OpenAi).await;
    server.push(Reply::Structured(valid_plan()));
    let gateway = gateway(&pool, &settings(Some(&server), None));

    let answer = expect_model(chat(&gateway, acme).await);

    assert_eq!(answer.provider, ProviderKind::OpenAiCompatible);
    assert_eq!(answer.model, "gpt-fake");
    assert!(!answer.repaired);
    assert!(answer.skipped.is_empty());
    assert_eq!(answer.output.zones[0].code, "GATE-1");
    let rows = calls(&pool).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.provider, "openai_compatible");
    assert_eq!(row.operation, "chat");
    assert_eq!(row.model, "gpt-fake");
    assert_eq!(row.template, TEMPLATE);
    assert_eq!(row.prompt_hash, request().prompt_hash());
    assert_eq!(row.attempt, 1);
    assert_eq!((row.input_tokens, row.output_tokens), (120, 30));
    // 120 input tokens at $1 and 30 output tokens at $2 per million.
    let cost = row.cost_usd.expect("gpt-fake has a price");
    assert!((cost - 0.000_18).abs() < 1e-12, "{cost}");
    assert!(row.latency_ms >= 0);
    assert_eq!(row.outcome, "ok");
    assert_eq!(row.error, None);
    assert_eq!(row.fallback_reason, None);
    assert_eq!(row.correlation_id, CORRELATION);
}

#[tokio::test]
async fn anthropic_answer_is_recorded() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let server = FakeServer::start(Flavor::Anthropic).await;
    server.push(Reply::Structured(valid_plan()));
    let gateway = gateway(&pool, &settings(None, Some(&server)));

    let answer = expect_model(chat(&gateway, acme).await);

    assert_eq!(answer.provider, ProviderKind::Anthropic);
    assert_eq!(answer.model, "claude-fake");
    assert_eq!(answer.output.zones.len(), 1);
    let rows = calls(&pool).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].provider, "anthropic");
    assert_eq!((rows[0].input_tokens, rows[0].output_tokens), (200, 40));
    // 200 tokens at $3 and 40 at $15 per million.
    let cost = rows[0].cost_usd.unwrap();
    assert!((cost - 0.001_2).abs() < 1e-12, "{cost}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn malformed_then_valid_is_repaired() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let server = FakeServer::start(Flavor::OpenAi).await;
    server.push(Reply::Text("Sure! Here are the zones: {zones".to_string()));
    server.push(Reply::Structured(valid_plan()));
    let gateway = gateway(&pool, &settings(Some(&server), None));

    let answer = expect_model(chat(&gateway, acme).await);

    assert!(answer.repaired);
    assert_eq!(answer.output.zones[0].kind, "gate");
    let sent = server.requests();
    assert_eq!(sent.len(), 2);
    let repair_text = sent[1].body["messages"].to_string();
    assert!(
        repair_text.contains("Your previous output was invalid"),
        "{repair_text}"
    );
    let rows = calls(&pool).await;
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].attempt, rows[1].attempt), (1, 2));
    assert_eq!(rows[0].outcome, "model_provider");
    let error = rows[0].error.as_deref().unwrap();
    assert!(error.contains("not valid JSON"), "{error}");
    assert_eq!(rows[1].outcome, "ok");
    assert_eq!(rows[0].prompt_hash, rows[1].prompt_hash);
    assert_eq!(
        breaker_state(&pool, acme, "openai_compatible").await,
        None,
        "a repaired answer does not count as a failure"
    );
}

#[tokio::test]
async fn schema_violation_then_valid_is_repaired() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let server = FakeServer::start(Flavor::Anthropic).await;
    server.push(Reply::Structured(invalid_plan()));
    server.push(Reply::Structured(valid_plan()));
    let gateway = gateway(&pool, &settings(None, Some(&server)));

    let answer = expect_model(chat(&gateway, acme).await);

    assert!(answer.repaired);
    let repair = &server.requests()[1].body;
    let text = repair["messages"].to_string();
    assert!(text.contains("zones[0].kind"), "{text}");
    assert!(text.contains("zones[0].confidence is 1.7"), "{text}");
    let rows = calls(&pool).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].outcome, "model_provider");
    assert!(rows[0].error.as_deref().unwrap().contains("\"moat\""));
    assert_eq!((rows[0].input_tokens, rows[0].output_tokens), (200, 40));
    assert_eq!(rows[1].outcome, "ok");
}

#[tokio::test]
async fn invalid_twice_falls_back() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    let anthropic = FakeServer::start(Flavor::Anthropic).await;
    openai.push(Reply::Structured(invalid_plan()));
    openai.push(Reply::Structured(invalid_plan()));
    anthropic.push(Reply::Structured(valid_plan()));
    let gateway = gateway(&pool, &settings(Some(&openai), Some(&anthropic)));

    let answer = expect_model(chat(&gateway, acme).await);

    assert_eq!(answer.provider, ProviderKind::Anthropic);
    assert_eq!(answer.skipped.len(), 1);
    match &answer.skipped[0].reason {
        SkipReason::Failed { class, message, .. } => {
            assert_eq!(*class, ErrorClass::ModelProvider);
            assert!(message.contains("after one repair attempt"), "{message}");
        }
        other => panic!("unexpected skip {other:?}"),
    }
    let rows = calls(&pool).await;
    assert_eq!(rows.len(), 3);
    let fallback = rows[2].fallback_reason.as_deref().unwrap();
    assert!(
        fallback.contains("openai_compatible skipped: model_provider error"),
        "{fallback}"
    );
}

#[tokio::test]
async fn retry_after_starts_cooldown() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    let anthropic = FakeServer::start(Flavor::Anthropic).await;
    openai.push(Reply::RateLimited(Some("30".to_string())));
    anthropic.push(Reply::Structured(valid_plan()));
    anthropic.push(Reply::Structured(valid_plan()));
    let gateway = gateway(&pool, &settings(Some(&openai), Some(&anthropic)));

    let first = expect_model(chat(&gateway, acme).await);

    assert_eq!(first.provider, ProviderKind::Anthropic);
    match &first.skipped[0].reason {
        SkipReason::Failed {
            class, retry_after, ..
        } => {
            assert_eq!(*class, ErrorClass::RateLimited);
            let wait = retry_after.expect("the Retry-After is kept");
            assert!(wait > Duration::from_secs(25), "{wait:?}");
            assert!(wait <= Duration::from_secs(30), "{wait:?}");
        }
        other => panic!("unexpected skip {other:?}"),
    }
    let until_in: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM until - now())::float8 FROM provider_cooldowns \
          WHERE provider = 'openai_compatible'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!((25.0..=30.5).contains(&until_in), "{until_in}");

    let second = expect_model(chat(&gateway, acme).await);

    assert_eq!(second.provider, ProviderKind::Anthropic);
    assert!(
        matches!(second.skipped[0].reason, SkipReason::CoolingDown { .. }),
        "{:?}",
        second.skipped
    );
    assert_eq!(openai.requests().len(), 1, "no request during the cooldown");
    let rows = calls(&pool).await;
    assert_eq!(rows[0].outcome, "rate_limited");
    assert_eq!(
        breaker_state(&pool, acme, "openai_compatible").await,
        None,
        "a 429 does not count toward the breaker"
    );
}

#[tokio::test]
async fn cooldown_becomes_job_retry_after() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    openai.push(Reply::RateLimited(Some("20".to_string())));
    let gateway = gateway(&pool, &settings(Some(&openai), None));

    let first = expect_offline(chat(&gateway, acme).await);
    let second = expect_offline(chat(&gateway, acme).await);

    assert_eq!(first.cause, OfflineCause::ChainExhausted);
    assert!(matches!(
        second.skipped[0].reason,
        SkipReason::CoolingDown { .. }
    ));
    let error = second.into_job_error();
    assert_eq!(error.class, ErrorClass::RateLimited);
    let wait = error.retry_after.expect("the cooldown's end is the wait");
    assert!(wait > Duration::from_secs(15), "{wait:?}");
    assert!(wait <= Duration::from_secs(20), "{wait:?}");
    assert_eq!(openai.requests().len(), 1);
}

#[tokio::test]
async fn requests_per_minute_limit_skips() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    let anthropic = FakeServer::start(Flavor::Anthropic).await;
    openai.push(Reply::Structured(valid_plan()));
    anthropic.push(Reply::Structured(valid_plan()));
    let mut settings = settings(Some(&openai), Some(&anthropic));
    settings.rate_limits.requests_per_minute = 1;
    let gateway = gateway(&pool, &settings);
    avoid_minute_boundary(&pool).await;

    let first = expect_model(chat(&gateway, acme).await);
    let second = expect_model(chat(&gateway, acme).await);

    assert_eq!(first.provider, ProviderKind::OpenAiCompatible);
    assert_eq!(second.provider, ProviderKind::Anthropic);
    match &second.skipped[0].reason {
        SkipReason::RateLimited { limit, .. } => assert_eq!(*limit, "requests per minute"),
        other => panic!("unexpected skip {other:?}"),
    }
    assert_eq!(openai.requests().len(), 1);
}

#[tokio::test]
async fn tokens_per_minute_limit_skips() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    openai.push(Reply::Structured(valid_plan()));
    let mut settings = settings(Some(&openai), None);
    // The fake server bills 150 tokens per call.
    settings.rate_limits.tokens_per_minute = 100;
    let gateway = gateway(&pool, &settings);
    avoid_minute_boundary(&pool).await;

    expect_model(chat(&gateway, acme).await);
    let second = expect_offline(chat(&gateway, acme).await);

    match &second.skipped[0].reason {
        SkipReason::RateLimited { limit, .. } => assert_eq!(*limit, "tokens per minute"),
        other => panic!("unexpected skip {other:?}"),
    }
    let tokens: i64 = sqlx::query_scalar("SELECT sum(tokens)::bigint FROM provider_rate_windows")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tokens, 150);
    assert_eq!(openai.requests().len(), 1);
}

/// Fails three calls on OpenAI with HTTP 500 through `gateway`; Anthropic answers each.
async fn open_openai_breaker(
    gateway: &Gateway,
    tenant: TenantId,
    openai: &FakeServer,
    anthropic: &FakeServer,
) {
    for attempt in 1..=3 {
        openai.push(Reply::Error(500, "The server had an error".to_string()));
        anthropic.push(Reply::Structured(valid_plan()));
        let answer = expect_model(chat(gateway, tenant).await);
        assert_eq!(answer.provider, ProviderKind::Anthropic, "call {attempt}");
    }
}

#[tokio::test]
async fn breaker_opens_then_one_probe_closes_it() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    let anthropic = FakeServer::start(Flavor::Anthropic).await;
    let gateway = Arc::new(gateway(&pool, &settings(Some(&openai), Some(&anthropic))));

    open_openai_breaker(&gateway, acme, &openai, &anthropic).await;

    assert_eq!(openai.requests().len(), 3);
    assert_eq!(
        breaker_state(&pool, acme, "openai_compatible")
            .await
            .as_deref(),
        Some("open")
    );

    // While open, the next call goes to the fallback without touching OpenAI.
    anthropic.push(Reply::Structured(valid_plan()));
    let while_open = expect_model(chat(&gateway, acme).await);
    assert_eq!(while_open.provider, ProviderKind::Anthropic);
    assert!(matches!(
        while_open.skipped[0].reason,
        SkipReason::BreakerOpen { .. }
    ));
    assert_eq!(openai.requests().len(), 3, "the open breaker sent nothing");

    // Other tenants have their own breaker.
    let other = tenant(&pool, "other").await;
    openai.push(Reply::Structured(valid_plan()));
    let other_answer = expect_model(chat(&gateway, other).await);
    assert_eq!(other_answer.provider, ProviderKind::OpenAiCompatible);
    assert_eq!(openai.requests().len(), 4);

    // After the open period (2 s here), one slow probe runs while a second caller skips OpenAI.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    openai.push(Reply::Slow(
        Duration::from_millis(1_500),
        Box::new(Reply::Structured(valid_plan())),
    ));
    anthropic.push(Reply::Structured(valid_plan()));
    let probe = tokio::spawn({
        let gateway = Arc::clone(&gateway);
        async move { chat(&gateway, acme).await }
    });
    // The second call starts once the probe's request reached OpenAI and waits there.
    for _ in 0..500 {
        if openai.requests().len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(openai.requests().len(), 5, "the probe reached OpenAI");
    let concurrent = expect_model(chat(&gateway, acme).await);
    let probe = expect_model(probe.await.unwrap());

    assert_eq!(probe.provider, ProviderKind::OpenAiCompatible);
    assert_eq!(concurrent.provider, ProviderKind::Anthropic);
    assert!(
        matches!(concurrent.skipped[0].reason, SkipReason::ProbeRunning),
        "{:?}",
        concurrent.skipped
    );
    assert_eq!(
        openai.requests().len(),
        5,
        "exactly one probe reached OpenAI"
    );
    assert_eq!(
        breaker_state(&pool, acme, "openai_compatible")
            .await
            .as_deref(),
        Some("closed")
    );

    openai.push(Reply::Structured(valid_plan()));
    let after = expect_model(chat(&gateway, acme).await);
    assert_eq!(after.provider, ProviderKind::OpenAiCompatible);
}

#[tokio::test]
async fn failed_probe_reopens_breaker() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    let anthropic = FakeServer::start(Flavor::Anthropic).await;
    let gateway = gateway(&pool, &settings(Some(&openai), Some(&anthropic)));
    open_openai_breaker(&gateway, acme, &openai, &anthropic).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;

    openai.push(Reply::Error(503, "still down".to_string()));
    anthropic.push(Reply::Structured(valid_plan()));
    anthropic.push(Reply::Structured(valid_plan()));
    let probe = expect_model(chat(&gateway, acme).await);
    let after = expect_model(chat(&gateway, acme).await);

    assert_eq!(probe.provider, ProviderKind::Anthropic);
    assert!(matches!(probe.skipped[0].reason, SkipReason::Failed { .. }));
    assert!(matches!(
        after.skipped[0].reason,
        SkipReason::BreakerOpen { .. }
    ));
    assert_eq!(openai.requests().len(), 4);
    assert_eq!(
        breaker_state(&pool, acme, "openai_compatible")
            .await
            .as_deref(),
        Some("open")
    );
}

/// Environment of [`child_process_call`]: the test database, the tenant and the fake servers.
const CHILD_DATABASE: &str = "SITELINE_TEST_CHILD_DATABASE";
const CHILD_TENANT: &str = "SITELINE_TEST_CHILD_TENANT";
const CHILD_OPENAI: &str = "SITELINE_TEST_CHILD_OPENAI";
const CHILD_ANTHROPIC: &str = "SITELINE_TEST_CHILD_ANTHROPIC";

/// Makes one gateway call from a separate operating-system process. The parent test runs this
/// test binary again with only this test selected and the `SITELINE_TEST_CHILD_*` variables
/// set. Run on its own, it returns at once.
#[tokio::test]
#[ignore = "run by second_process_sees_open_breaker as a child process"]
async fn child_process_call() {
    let Ok(database) = std::env::var(CHILD_DATABASE) else {
        return;
    };
    let admin: sqlx::postgres::PgConnectOptions = std::env::var("DATABASE_URL")
        .expect("the parent passes DATABASE_URL on")
        .parse()
        .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(admin.database(&database))
        .await
        .unwrap();
    let tenant = TenantId(std::env::var(CHILD_TENANT).unwrap().parse().unwrap());
    let openai: Url = std::env::var(CHILD_OPENAI).unwrap().parse().unwrap();
    let anthropic: Url = std::env::var(CHILD_ANTHROPIC).unwrap().parse().unwrap();
    let gateway = gateway(&pool, &settings_for(Some(&openai), Some(&anthropic)));

    let answer = expect_model(chat(&gateway, tenant).await);
    let skipped: Vec<String> = answer
        .skipped
        .iter()
        .map(|skip| match skip.reason {
            SkipReason::BreakerOpen { .. } => format!("{}:breaker_open", skip.provider.as_str()),
            ref other => format!("{}:{other:?}", skip.provider.as_str()),
        })
        .collect();
    println!(
        "CHILD-ANSWER pid={} provider={} skipped={}",
        std::process::id(),
        answer.provider.as_str(),
        skipped.join(",")
    );
}

#[tokio::test]
async fn second_process_sees_open_breaker() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    let anthropic = FakeServer::start(Flavor::Anthropic).await;
    let first_process = gateway(&pool, &settings(Some(&openai), Some(&anthropic)));
    open_openai_breaker(&first_process, acme, &openai, &anthropic).await;
    assert_eq!(openai.requests().len(), 3);
    assert_eq!(anthropic.requests().len(), 3);

    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    anthropic.push(Reply::Structured(valid_plan()));
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_call",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DATABASE, &database)
        .env(CHILD_TENANT, acme.0.to_string())
        .env(CHILD_OPENAI, openai.base_url.as_str())
        .env(CHILD_ANTHROPIC, anthropic.base_url.as_str())
        .output()
        .await
        .expect("the test binary runs again as a child process");
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );

    // libtest prints the test's name on the same line before its output.
    let line = stdout
        .lines()
        .find_map(|line| line.find("CHILD-ANSWER ").map(|at| &line[at..]))
        .unwrap_or_else(|| panic!("the child printed no answer: {stdout}"));
    let child_pid: u32 = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("pid="))
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(
        child_pid,
        std::process::id(),
        "the call ran in another process"
    );
    assert!(
        line.contains(" provider=anthropic skipped=openai_compatible:breaker_open"),
        "{line}"
    );
    assert_eq!(
        openai.requests().len(),
        3,
        "the child process did not touch OpenAI"
    );
    assert_eq!(anthropic.requests().len(), 4, "the child used the fallback");
}

#[tokio::test]
async fn breaker_reopens_after_sixty_seconds() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    let anthropic = FakeServer::start(Flavor::Anthropic).await;
    let mut settings = settings(Some(&openai), Some(&anthropic));
    settings.breaker = BreakerSettings::default();
    let gateway = Arc::new(gateway(&pool, &settings));
    open_openai_breaker(&gateway, acme, &openai, &anthropic).await;

    let open_seconds: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM reopens_at - opened_at)::float8 FROM provider_breakers \
          WHERE tenant_id = $1 AND provider = 'openai_compatible'",
    )
    .bind(acme.0)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(open_seconds, 60.0);

    // Instead of sleeping, move the breaker's times back: 58 s after opening it is still open.
    let back_date = |seconds: f64| {
        sqlx::query(
            "UPDATE provider_breakers \
                SET opened_at = opened_at - make_interval(secs => $2), \
                    reopens_at = reopens_at - make_interval(secs => $2), \
                    failures = ARRAY(SELECT f - make_interval(secs => $2) FROM unnest(failures) f) \
              WHERE tenant_id = $1 AND provider = 'openai_compatible'",
        )
        .bind(acme.0)
        .bind(seconds)
        .execute(&pool)
    };
    back_date(58.0).await.unwrap();
    anthropic.push(Reply::Structured(valid_plan()));
    let still_open = expect_model(chat(&gateway, acme).await);
    assert!(
        matches!(still_open.skipped[0].reason, SkipReason::BreakerOpen { .. }),
        "{:?}",
        still_open.skipped
    );
    assert_eq!(openai.requests().len(), 3);

    // At 61 s, eight callers arrive together: one probe reaches OpenAI, seven use Anthropic.
    back_date(3.0).await.unwrap();
    openai.push(Reply::Slow(
        Duration::from_millis(1_500),
        Box::new(Reply::Structured(valid_plan())),
    ));
    for _ in 0..7 {
        anthropic.push(Reply::Structured(valid_plan()));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let gateway = Arc::clone(&gateway);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                chat(&gateway, acme).await
            })
        })
        .collect();
    let mut by_openai = 0;
    let mut waited_for_probe = 0;
    for caller in callers {
        let answer = expect_model(caller.await.unwrap());
        match answer.provider {
            ProviderKind::OpenAiCompatible => by_openai += 1,
            _ => {
                assert!(
                    matches!(answer.skipped[0].reason, SkipReason::ProbeRunning),
                    "{:?}",
                    answer.skipped
                );
                waited_for_probe += 1;
            }
        }
    }
    assert_eq!(by_openai, 1, "exactly one probe");
    assert_eq!(waited_for_probe, 7);
    assert_eq!(openai.requests().len(), 4, "one request reached OpenAI");
    assert_eq!(
        breaker_state(&pool, acme, "openai_compatible")
            .await
            .as_deref(),
        Some("closed")
    );
}

#[tokio::test]
async fn rejected_requests_do_not_open_breaker() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    let gateway = gateway(&pool, &settings(Some(&openai), None));

    for _ in 0..4 {
        openai.push(Reply::Error(400, "max_tokens is too large".to_string()));
        let reason = expect_offline(chat(&gateway, acme).await);
        match &reason.skipped[0].reason {
            SkipReason::Failed { class, .. } => assert_eq!(*class, ErrorClass::Permanent),
            other => panic!("unexpected skip {other:?}"),
        }
    }

    assert_eq!(
        openai.requests().len(),
        4,
        "every call reached the provider"
    );
    assert_eq!(breaker_state(&pool, acme, "openai_compatible").await, None);
    let permanent: i64 =
        sqlx::query_scalar("SELECT count(*) FROM provider_calls WHERE outcome = 'permanent'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(permanent, 4);
}

#[tokio::test]
async fn over_budget_goes_offline() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let other = tenant(&pool, "other").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    openai.push(Reply::Structured(valid_plan()));
    openai.push(Reply::Structured(valid_plan()));
    let mut settings = settings(Some(&openai), None);
    settings.monthly_token_budget = 100;
    let gateway = gateway(&pool, &settings);

    expect_model(chat(&gateway, acme).await);
    let reason = expect_offline(chat(&gateway, acme).await);

    match &reason.cause {
        OfflineCause::OverBudget { used, limit, .. } => assert_eq!((*used, *limit), (150, 100)),
        other => panic!("unexpected cause {other:?}"),
    }
    let text = reason.to_string();
    assert!(text.contains("over its monthly token budget"), "{text}");
    assert_eq!(openai.requests().len(), 1, "the provider was not called");
    let rows = calls(&pool).await;
    let offline = rows.last().unwrap();
    assert_eq!(offline.provider, "offline");
    assert_eq!(offline.model, "offline-rules");
    assert!(offline
        .fallback_reason
        .as_deref()
        .unwrap()
        .contains("over its monthly token budget"));

    let embedded = gateway
        .embed(acme, "knowledge_chunks", &["gate".to_string()], CORRELATION)
        .await
        .unwrap();
    assert_eq!(embedded.provider, ProviderKind::Offline);
    assert!(matches!(
        embedded.offline_reason.unwrap().cause,
        OfflineCause::OverBudget { .. }
    ));

    // The budget is per tenant.
    let answer = expect_model(chat(&gateway, other).await);
    assert_eq!(answer.provider, ProviderKind::OpenAiCompatible);
}

#[tokio::test]
async fn budget_counts_current_month_only() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    openai.push(Reply::Structured(valid_plan()));
    let mut settings = settings(Some(&openai), None);
    settings.monthly_token_budget = 1_000;
    let gateway = gateway(&pool, &settings);
    // A large call of last month does not count toward this month's budget.
    sqlx::query(
        "INSERT INTO provider_calls (tenant_id, provider, operation, model, template, prompt_hash, \
                                     attempt, input_tokens, output_tokens, latency_ms, outcome, \
                                     correlation_id, created_at) \
         VALUES ($1, 'openai_compatible', 'chat', 'gpt-fake', 'maker', repeat('a', 64), 1, \
                 50000, 50000, 10, 'ok', 'old', \
                 date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' \
                   - interval '1 second')",
    )
    .bind(acme.0)
    .execute(&pool)
    .await
    .unwrap();

    let answer = expect_model(chat(&gateway, acme).await);

    assert_eq!(answer.provider, ProviderKind::OpenAiCompatible);
}

/// Inserts a 100-token call record of `tenant` made `days_ago` days ago.
async fn insert_call_days_ago(pool: &PgPool, tenant: TenantId, days_ago: i32) {
    sqlx::query(
        "INSERT INTO provider_calls (tenant_id, provider, operation, model, template, prompt_hash, \
                                     attempt, input_tokens, output_tokens, latency_ms, outcome, \
                                     correlation_id, created_at) \
         VALUES ($1, 'openai_compatible', 'chat', 'gpt-fake', 'maker', repeat('a', 64), 1, \
                 60, 40, 10, 'ok', 'aged', now() - make_interval(days => $2))",
    )
    .bind(tenant.0)
    .bind(days_ago)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn upkeep_prunes_old_provider_calls() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    for days_ago in [0, 10, 31, 89, 91, 400] {
        insert_call_days_ago(&pool, acme, days_ago).await;
    }

    let report = backend::jobs::upkeep::run_upkeep(&pool, &JobSettings::default())
        .await
        .unwrap();

    assert_eq!(
        report.provider_calls, 2,
        "the 91- and 400-day-old calls went"
    );
    let left: Vec<i32> = sqlx::query_scalar(
        "SELECT round(extract(epoch FROM now() - created_at) / 86400)::int \
           FROM provider_calls ORDER BY created_at DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(left, vec![0, 10, 31, 89]);

    // A retention shorter than a month is raised to the minimum, so the calls the monthly
    // budget may still count (up to 31 days back) stay.
    let settings = JobSettings {
        provider_call_retention: Duration::from_secs(24 * 3600),
        ..JobSettings::default()
    };
    let report = backend::jobs::upkeep::run_upkeep(&pool, &settings)
        .await
        .unwrap();
    assert_eq!(report.provider_calls, 1, "only the 89-day-old call went");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM provider_calls")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 3);
}

#[tokio::test]
async fn no_provider_routes_offline() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let gateway = Gateway::offline_only(pool.clone());

    let reason = expect_offline(chat(&gateway, acme).await);

    assert_eq!(reason.cause, OfflineCause::NoProviderConfigured);
    assert_eq!(reason.to_string(), "no model provider is configured");
    assert_eq!(reason.clone().into_job_error().class, ErrorClass::Permanent);
    let rows = calls(&pool).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].provider, "offline");
    assert_eq!(rows[0].outcome, "ok");
    assert_eq!(gateway.chain(), vec![ProviderKind::Offline]);
}

#[tokio::test]
async fn invalid_request_is_not_sent() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    let gateway = gateway(&pool, &settings(Some(&openai), None));
    let mut bad = request();
    bad.temperature = 1.5;

    let error = gateway
        .chat(
            acme,
            TEMPLATE,
            &bad,
            CORRELATION,
            parse_validated::<ZonePlan>,
        )
        .await
        .unwrap_err();

    assert!(
        matches!(error, GatewayError::InvalidRequest(_)),
        "{error:?}"
    );
    let job_error: backend::jobs::JobError = error.into();
    assert_eq!(job_error.class, ErrorClass::Permanent);
    assert!(openai.requests().is_empty());
    assert!(calls(&pool).await.is_empty());
}

#[tokio::test]
async fn embeddings_use_chain_then_offline() {
    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    let anthropic = FakeServer::start(Flavor::Anthropic).await;
    let texts = vec!["gate".to_string(), "vault".to_string()];

    let with_openai = gateway(&pool, &settings(Some(&openai), Some(&anthropic)));
    let answer = with_openai
        .embed(acme, "knowledge_chunks", &texts, CORRELATION)
        .await
        .unwrap();
    assert_eq!(answer.provider, ProviderKind::OpenAiCompatible);
    assert_eq!(answer.embeddings.model, "embed-fake");
    assert_eq!(answer.embeddings.vectors.len(), 2);
    assert!(answer.offline_reason.is_none());

    let anthropic_only = gateway(&pool, &settings(None, Some(&anthropic)));
    let answer = anthropic_only
        .embed(acme, "knowledge_chunks", &texts, CORRELATION)
        .await
        .unwrap();
    assert_eq!(answer.provider, ProviderKind::Offline);
    assert_eq!(answer.embeddings.vectors.len(), 2);
    assert_eq!(answer.embeddings.vectors[0].len(), 384);
    assert_eq!(
        answer.offline_reason.unwrap().cause,
        OfflineCause::NoProviderConfigured
    );
    assert!(anthropic.requests().is_empty());

    let rows = calls(&pool).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].operation, "embed");
    assert_eq!(rows[0].model, "embed-fake");
    assert_eq!(rows[0].input_tokens, 9);
    assert_eq!(rows[0].template, "knowledge_chunks");
    assert_eq!(rows[1].provider, "offline");
    assert_eq!(rows[1].operation, "embed");
}

/// A log sink shared between the subscriber and the test.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn assert_no_key(what: &str, text: &str) {
    assert!(
        !text.contains(OPENAI_KEY),
        "the OpenAI key is in {what}: {text}"
    );
    assert!(
        !text.contains(ANTHROPIC_KEY),
        "the Anthropic key is in {what}: {text}"
    );
    assert!(
        !text.contains("KEYVALUE"),
        "part of a key is in {what}: {text}"
    );
}

#[tokio::test]
async fn keys_stay_out_of_logs_records_and_errors() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // With a single scoped subscriber and no global one, tracing caches each callsite's
    // interest from the thread that first reaches it, so the gateway's events would be lost
    // whenever another test reached them first. A global no-op subscriber beside the scoped one
    // makes tracing ask the current thread's subscriber at each event.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    // The test runs on one thread, so the guard covers every task the test polls.
    let _guard = tracing::subscriber::set_default(subscriber);

    let pool = fresh_pool().await;
    let acme = tenant(&pool, "acme").await;
    let openai = FakeServer::start(Flavor::OpenAi).await;
    let anthropic = FakeServer::start(Flavor::Anthropic).await;
    let settings = settings(Some(&openai), Some(&anthropic));
    let gateway = gateway(&pool, &settings);
    // Each reply with the number of requests it gets per provider: invalid output is repaired.
    let echoes = [
        (
            Reply::Error(401, format!("Incorrect API key provided: {OPENAI_KEY}")),
            1,
        ),
        (
            Reply::Error(
                500,
                format!("upstream failed for {ANTHROPIC_KEY} and {OPENAI_KEY}"),
            ),
            1,
        ),
        (Reply::RateLimited(Some("1".to_string())), 1),
        (
            Reply::Text(format!("not json, but a key: {OPENAI_KEY} {ANTHROPIC_KEY}")),
            2,
        ),
    ];

    let mut texts = vec![format!("{gateway:?}"), format!("{settings:?}")];
    for (echo, requests) in echoes {
        for _ in 0..requests {
            openai.push(echo.clone());
            anthropic.push(echo.clone());
        }
        let reason = expect_offline(chat(&gateway, acme).await);
        texts.push(reason.to_string());
        texts.push(format!("{reason:?}"));
        texts.push(reason.into_job_error().to_string());
        // Let the 1 s cooldown of the 429 end before the next reply.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    assert_eq!(openai.pending(), 0, "every scripted reply was used");
    assert_eq!(anthropic.pending(), 0, "every scripted reply was used");

    let log_text = logs.text();
    assert!(
        log_text.contains("model provider call failed"),
        "the failures were logged: {log_text}"
    );
    assert!(log_text.contains("[redacted]"), "{log_text}");
    assert_no_key("the logs", &log_text);
    for text in &texts {
        assert_no_key("an error message", text);
    }
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(c)::text FROM provider_calls c ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(rows.len() >= 8, "{rows:?}");
    for row in &rows {
        assert_no_key("provider_calls", row);
    }
    let cooldowns: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(c)::text FROM provider_cooldowns c")
            .fetch_all(&pool)
            .await
            .unwrap();
    for row in &cooldowns {
        assert_no_key("provider_cooldowns", row);
    }
}
