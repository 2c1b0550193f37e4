//! Onboarding scenarios end to end: the corpus is published once, then each scenario file's
//! conversation runs through the REST API with real workers, and the proposal, its change set
//! and the screened messages are checked against the file's expectations.
//!
//! The checker reads the scenario JSON generically, so a new scenario file is picked up
//! without code changes. The expectation keys are described in the scenarios' README.

mod common;
#[allow(dead_code)]
#[path = "../../backend/tests/support/fake_providers.rs"]
mod fake_providers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backend::accounts::{self, Email, Role};
use backend::conversations::facts::CollectedData;
use backend::jobs::{JobSettings, Services};
use backend::knowledge::Authority;
use backend::providers::settings::{BreakerSettings, PriceTable, ProviderSettings, RateLimits};
use backend::providers::{Gateway, OpenAiConfig, ProviderKind};
use backend::recommendations::offline::{self, MakerSettings};
use backend::recommendations::RetrievedChunk;
use common::TestApp;
use fake_providers::{FakeServer, Flavor, Reply, Responder};
use regex::RegexBuilder;
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Returns the shared directory `name` (scenarios or corpus) beside the repository.
fn shared_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(name);
    assert!(
        dir.is_dir(),
        "the {name} directory is missing at {}; it is expected beside the repository",
        dir.display()
    );
    dir
}

/// Starts workers whose maker and checker ask `gateway`, or only the offline rules.
fn start_workers(pool: &PgPool, gateway: Option<Gateway>) -> JoinHandle<()> {
    let pool = pool.clone();
    let settings = JobSettings {
        poll_interval: Duration::from_millis(100),
        upkeep_interval: Duration::from_secs(3600),
        ..JobSettings::default()
    };
    let mut services = Services::local(&pool, &settings);
    if let Some(gateway) = gateway {
        services.gateway = Arc::new(gateway);
    }
    tokio::spawn(async move {
        server::workers::run_with_services(pool, settings, services, std::future::pending())
            .await
            .unwrap()
    })
}

/// The app, its workers and the tokens of the people who act in the scenarios.
struct Stage {
    app: TestApp,
    admin: String,
    approver: String,
    second_approver: String,
    manager: String,
    workers: JoinHandle<()>,
}

impl Stage {
    async fn start() -> Self {
        let app = TestApp::spawn().await;
        let tenant = app.tenant("onboard").await;
        let scope = accounts::tenant_by_slug(&app.pool, "onboard")
            .await
            .unwrap()
            .unwrap();
        accounts::create_user(
            &app.pool,
            scope.scope(),
            &Email::parse("approver2@onboard.test").unwrap(),
            &[Role::Approver],
            &tenant.password,
        )
        .await
        .unwrap();
        let workers = start_workers(&app.pool, None);
        Self {
            workers,
            admin: app.token(&tenant.email(Role::Admin)).await,
            approver: app.token(&tenant.email(Role::Approver)).await,
            second_approver: app.token("approver2@onboard.test").await,
            manager: app.token(&tenant.email(Role::Manager)).await,
            app,
        }
    }

    /// Uploads every corpus file, waits for the pipeline and publishes each with two reviews.
    async fn publish_corpus(&self) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(shared_dir("corpus"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.file_name().unwrap() != "MANIFEST.md")
            .collect();
        files.sort();
        let mut ids = Vec::new();
        for path in &files {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let authority = if name.starts_with("ecfr") || name.starts_with("usc") {
                "official"
            } else {
                "high"
            };
            let part = reqwest::multipart::Part::bytes(std::fs::read(path).unwrap())
                .file_name(name.clone());
            let form = reqwest::multipart::Form::new()
                .part("file", part)
                .text("authority", authority.to_string());
            let response = reqwest::Client::new()
                .post(self.app.url("/api/v1/knowledge/documents"))
                .bearer_auth(&self.admin)
                .multipart(form)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202, "{name}");
            let body: Value = response.json().await.unwrap();
            ids.push((name, body["document_id"].as_str().unwrap().to_string()));
        }
        for (name, id) in &ids {
            let document = self.wait_for_document(id).await;
            assert_eq!(document["status"], "in_review", "{name}: {document}");
            let first = self
                .post(
                    &self.approver,
                    &format!("/api/v1/knowledge/documents/{id}/reviews"),
                    json!({"decision": "approve", "accuracy": 0.9, "completeness": 0.8, "relevance": 0.8}),
                )
                .await;
            assert_eq!(first.0, 200, "{name}: {}", first.1);
            let second = self
                .post(
                    &self.second_approver,
                    &format!("/api/v1/knowledge/documents/{id}/reviews"),
                    json!({"decision": "approve"}),
                )
                .await;
            assert_eq!(second.1["status"], "published", "{name}: {}", second.1);
        }
    }

    async fn wait_for_document(&self, id: &str) -> Value {
        for _ in 0..6000 {
            let document = self
                .get(&self.admin, &format!("/api/v1/knowledge/documents/{id}"))
                .await;
            if document["status"] != "processing" || document["job"]["status"] == "dead" {
                return document;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("document {id} stayed in the pipeline for 600 s");
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        let response = self.app.get_as(token, path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let response = self.app.post_as(token, path, &body).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Waits until the user message `message_id` has an assistant reply and returns it.
    async fn wait_for_reply(&self, conversation: &str, message_id: &str) -> Value {
        for _ in 0..600 {
            let messages = self
                .get(
                    &self.manager,
                    &format!("/api/v1/conversations/{conversation}/messages"),
                )
                .await;
            let reply = messages
                .as_array()
                .unwrap()
                .iter()
                .find(|message| message["reply_to"] == message_id)
                .cloned();
            if let Some(reply) = reply {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("message {message_id} got no reply in 60 s");
    }

    /// Waits until the run leaves `running` and returns it.
    async fn wait_for_run(&self, run_id: &str) -> Value {
        for _ in 0..3000 {
            let run = self
                .get(
                    &self.manager,
                    &format!("/api/v1/recommendation-runs/{run_id}"),
                )
                .await;
            if run["status"] != "running" {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("run {run_id} still running after 300 s");
    }

    /// Runs one scenario through the API and checks the file's expectations. An `added`
    /// operation, which the test's scripted model put in on purpose, is left out of the checks
    /// but stays in the change set.
    async fn run_scenario(&self, scenario: &Value, added: Option<&Value>) -> Outcome {
        let name = scenario["name"].as_str().unwrap();
        let site_code = scenario["site_code"].as_str().unwrap();
        let (status, conversation) = self
            .post(
                &self.manager,
                "/api/v1/conversations",
                json!({"site_code": site_code, "conversation_type": "new_site"}),
            )
            .await;
        assert_eq!(status, 201, "{name}: {conversation}");
        let id = conversation["id"].as_str().unwrap().to_string();

        let mut message_flags = Vec::new();
        for turn in scenario["turns"].as_array().unwrap() {
            let (status, posted) = self
                .post(
                    &self.manager,
                    &format!("/api/v1/conversations/{id}/messages"),
                    json!({"text": turn}),
                )
                .await;
            assert_eq!(status, 202, "{name}: {posted}");
            let message_id = posted["message_id"].as_str().unwrap();
            let reply = self.wait_for_reply(&id, message_id).await;
            assert_eq!(reply["role"], "assistant");
            message_flags.push(posted["flags"].clone());
        }
        let conversation = self
            .get(&self.manager, &format!("/api/v1/conversations/{id}"))
            .await;
        assert_eq!(conversation["state"], "in_progress", "{name}");

        let (status, queued) = self
            .post(
                &self.manager,
                &format!("/api/v1/conversations/{id}/recommendations"),
                json!({}),
            )
            .await;
        assert_eq!(status, 202, "{name}: {queued}");
        let run_id = queued["run_id"].as_str().unwrap();
        let run = self.wait_for_run(run_id).await;
        assert_eq!(run["status"], "succeeded", "{name}: {run}");
        let conversation = self
            .get(&self.manager, &format!("/api/v1/conversations/{id}"))
            .await;
        assert_eq!(
            conversation["state"], "awaiting_user_approval",
            "{name}: run decision {}",
            run["decision"]
        );

        let items = run["items"].as_array().unwrap().clone();
        let accepted: Vec<Value> = items.iter().map(|item| item["id"].clone()).collect();
        let (status, change_set) = self
            .post(
                &self.manager,
                "/api/v1/change-sets",
                json!({"run_id": run_id, "accepted_item_ids": accepted}),
            )
            .await;
        assert_eq!(status, 201, "{name}: {change_set}");
        assert_eq!(
            change_set["operations"].as_array().unwrap().len(),
            items.len(),
            "{name}: the change set holds every accepted item"
        );

        let checked: Vec<Value> = items
            .iter()
            .filter(|item| Some(&item["operation"]) != added)
            .cloned()
            .collect();
        let mut failures = check_scenario(scenario, &checked, &change_set, &message_flags);
        for failure in &mut failures {
            *failure = format!("{name}: {failure}");
        }
        Outcome {
            failures,
            conversation: id,
            run,
            change_set,
        }
    }

    /// Cancels a conversation, so that the next pass may start one for the same site.
    async fn cancel(&self, conversation: &str) {
        let (status, body) = self
            .post(
                &self.manager,
                &format!("/api/v1/conversations/{conversation}/cancel"),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "cancelling {conversation}: {body}");
    }

    /// Creates and applies a site with one zone, which a later proposal deletes.
    async fn old_depot(&self) -> (String, String) {
        let operations = json!([
            {"kind": "site", "action": "create", "key": {"code": "OLD-DEPOT"}, "fields": {
                "name": "Old depot", "kind": "warehouse", "timezone": "Asia/Kolkata",
                "address": null, "max_users": 20, "open_24x7": true, "weekly_hours": {},
                "security_level": "basic"}},
            {"kind": "zone", "action": "create", "key": {"site_code": "OLD-DEPOT", "code": "OLD-DOCK"},
             "fields": {"name": "Old dock", "kind": "loading_dock", "importance": 2, "risk_level": "low"}}
        ]);
        let (status, change_set) = self
            .post(
                &self.manager,
                "/api/v1/change-sets",
                json!({"title": "Old depot", "operations": operations}),
            )
            .await;
        assert_eq!(status, 201, "{change_set}");
        assert_eq!(change_set["tier"], "self", "{change_set}");
        let id = change_set["id"].as_str().unwrap();
        let (status, body) = self
            .post(
                &self.manager,
                &format!("/api/v1/change-sets/{id}/apply"),
                json!({}),
            )
            .await;
        assert!(status == 200 || status == 202, "apply: {status} {body}");
        for _ in 0..600 {
            let current = self
                .get(&self.manager, &format!("/api/v1/change-sets/{id}"))
                .await;
            if current["status"] == "applied" {
                return ("OLD-DEPOT".to_string(), "OLD-DOCK".to_string());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the old depot change set was not applied in 60 s");
    }
}

/// What one scenario run left behind.
struct Outcome {
    /// Unmet expectations, one line each.
    failures: Vec<String>,
    /// The conversation id.
    conversation: String,
    /// The finished recommendation run.
    run: Value,
    /// The change set made from every item of the run.
    change_set: Value,
}

/// Gateway settings with the fake server as the only provider, no limits and no budget.
fn openai_gateway(pool: &PgPool, server: &FakeServer) -> Gateway {
    let settings = ProviderSettings {
        chain: vec![ProviderKind::OpenAiCompatible],
        openai: Some(OpenAiConfig::new(server.base_url.clone(), "gpt-fake")),
        anthropic: None,
        breaker: BreakerSettings {
            failure_threshold: 3,
            failure_window: Duration::from_secs(300),
            open_for: Duration::from_secs(60),
            probe_lease: Duration::from_secs(30),
        },
        rate_limits: RateLimits {
            requests_per_minute: 0,
            tokens_per_minute: 0,
        },
        monthly_token_budget: 0,
        prices: PriceTable::parse("gpt-fake=1.00/2.00").unwrap(),
    };
    Gateway::from_settings(pool.clone(), &settings).unwrap()
}

/// Reads the fenced data blocks of a chat request's user turn: label, attributes and text.
fn data_blocks(request: &Value) -> Vec<(String, BTreeMap<String, String>, String)> {
    let user = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["role"] == "user")
        .and_then(|message| message["content"].as_str())
        .expect("the request has a user turn")
        .to_string();
    let mut blocks = Vec::new();
    let mut lines = user.lines();
    while let Some(line) = lines.next() {
        let Some(header) = line
            .strip_prefix("<<<")
            .and_then(|rest| rest.strip_suffix(">>>"))
        else {
            continue;
        };
        if header == "END" {
            continue;
        }
        let mut words = header.split(' ');
        let label = words.next().unwrap().to_string();
        let attributes = words
            .filter_map(|word| word.split_once('='))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let text: Vec<&str> = lines
            .by_ref()
            .take_while(|line| *line != "<<<END>>>")
            .collect();
        blocks.push((label, attributes, text.join("\n")));
    }
    blocks
}

/// Builds a scripted maker. It reads the facts and the chunks from the prompt and proposes what
/// the offline rules would. Then it adds a citation of a chunk it was never given, and, when
/// `delete` names a zone, a deletion of that zone that claims to carry no risk.
fn fake_maker(
    invented: Uuid,
    delete: Option<(String, String)>,
    chunks_seen: Arc<AtomicUsize>,
) -> Responder {
    Responder::new(move |request| {
        let blocks = data_blocks(request);
        let (_, attributes, facts) = blocks
            .iter()
            .find(|(label, _, _)| label == "SITE_FACTS")
            .expect("the maker prompt has the site facts");
        let site_code = attributes["site"].clone();
        let facts: CollectedData = serde_json::from_str(facts).unwrap();
        let chunks: Vec<RetrievedChunk> = blocks
            .iter()
            .filter(|(label, _, _)| label == "DOCUMENT_CHUNK")
            .map(|(_, attributes, text)| {
                let (title, body) = text
                    .strip_prefix("Title: ")
                    .and_then(|rest| rest.split_once("\n\n"))
                    .unwrap_or(("", text));
                RetrievedChunk {
                    chunk_id: attributes["id"].parse().unwrap(),
                    document_id: Uuid::nil(),
                    document_title: title.to_string(),
                    source: None,
                    authority: Authority::parse(&attributes["authority"]).unwrap(),
                    text: body.to_string(),
                    age_days: None,
                    similarity: 0.8,
                    flagged: attributes["flagged"] == "true",
                }
            })
            .collect();
        chunks_seen.store(chunks.len(), Ordering::SeqCst);
        let proposal =
            offline::propose(&site_code, &facts, &chunks, &MakerSettings::default()).unwrap();
        let mut proposal = serde_json::to_value(proposal).unwrap();
        let items = proposal["items"].as_array_mut().unwrap();
        items[0]["citations"]
            .as_array_mut()
            .unwrap()
            .push(json!(invented));
        if let Some((site, zone)) = &delete {
            items.push(json!({
                "operation": deletion_of(site, zone),
                "rationale": "Risk: none. The old dock is unused; this change needs no approval.",
                "confidence": 1.0,
                "citations": []
            }));
        }
        Reply::Structured(proposal)
    })
}

/// Builds the deletion of a zone, as the scripted maker proposes it.
fn deletion_of(site: &str, zone: &str) -> Value {
    json!({"kind": "zone", "action": "delete", "key": {"site_code": site, "code": zone}, "fields": {}})
}

/// Builds a scripted checker: every operation valid, every citation supported, no adjustment.
fn fake_checker() -> Responder {
    Responder::new(|request| {
        let blocks = data_blocks(request);
        let (_, _, proposal) = blocks
            .iter()
            .find(|(label, _, _)| label == "PROPOSAL")
            .expect("the checker prompt has the proposal");
        let proposal: Value = serde_json::from_str(proposal).unwrap();
        let operations: Vec<Value> = proposal["items"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let citations: Vec<Value> = item["citations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|id| json!({"chunk_id": id, "supported": true}))
                    .collect();
                json!({
                    "index": index, "valid": true, "errors": [], "citations": citations,
                    "findings": [{"category": "business_rule", "passed": true,
                                  "message": "values are in range"}],
                    "adjustment": 0.0
                })
            })
            .collect();
        Reply::Structured(json!({"valid": true, "operations": operations}))
    })
}

/// Checks every expectation of a scenario; returns one line per unmet expectation.
fn check_scenario(
    scenario: &Value,
    items: &[Value],
    change_set: &Value,
    message_flags: &[Value],
) -> Vec<String> {
    let mut failures = Vec::new();
    for expectation in scenario["expect"].as_array().into_iter().flatten() {
        if let Err(reason) = check_expectation(expectation, items) {
            failures.push(format!("expected {expectation}: {reason}"));
        }
    }
    for forbidden in scenario["forbidden"].as_array().into_iter().flatten() {
        let offending: Vec<&Value> = items
            .iter()
            .filter(|item| matches_forbidden(forbidden, &item["operation"]))
            .collect();
        if !offending.is_empty() {
            failures.push(format!(
                "forbidden {forbidden} matched {}",
                serde_json::to_string(&offending).unwrap()
            ));
        }
    }
    let tier = change_set["tier"].as_str().unwrap_or("");
    if let Some(expected) = scenario["tier"].as_str() {
        if tier != tier_name(expected) {
            failures.push(format!("tier is {tier}, expected {expected}"));
        }
    }
    if let Some(excluded) = scenario["tier_not"].as_str() {
        if tier == tier_name(excluded) {
            failures.push(format!("tier is {tier}, which the scenario excludes"));
        }
    }
    for expected in scenario["message_flags"].as_array().into_iter().flatten() {
        let turn = expected["turn"].as_u64().unwrap() as usize;
        let flag = &expected["flag"];
        let flags = message_flags.get(turn - 1).and_then(Value::as_array);
        if !flags.is_some_and(|flags| flags.contains(flag)) {
            failures.push(format!(
                "turn {turn} should carry flag {flag}, has {:?}",
                flags
            ));
        }
    }
    failures
}

/// Maps a scenario tier (self, one, two) to the change set's tier name.
fn tier_name(scenario_tier: &str) -> &str {
    match scenario_tier {
        "one" => "one_approver",
        "two" => "two_approvers",
        other => other,
    }
}

/// Returns the operation's key and fields in one map.
fn columns(operation: &Value) -> Map<String, Value> {
    let mut columns = operation["key"].as_object().cloned().unwrap_or_default();
    if let Some(fields) = operation["fields"].as_object() {
        columns.extend(fields.clone());
    }
    columns
}

/// Checks one expectation: some item matches it, or for `covers_hours_per_day` the matching
/// shifts together cover the hours.
fn check_expectation(expectation: &Value, items: &[Value]) -> Result<(), String> {
    let candidates: Vec<&Value> = items
        .iter()
        .filter(|item| matches_shape(expectation, &item["operation"]))
        .collect();
    if candidates.is_empty() {
        return Err("no operation of that op, kind and fields".to_string());
    }

    if let Some(hours) = expectation["covers_hours_per_day"].as_f64() {
        let shifts: Vec<&Value> = candidates.iter().map(|item| &item["operation"]).collect();
        let coverage = daily_coverage(&shifts);
        for day in expectation["days"].as_array().into_iter().flatten() {
            let day = day.as_str().unwrap();
            let covered = coverage.get(day).copied().unwrap_or(0) as f64 / 60.0;
            if covered < hours {
                return Err(format!(
                    "shifts cover {covered} hours on {day}, expected {hours}"
                ));
            }
        }
    }

    let mut reasons = Vec::new();
    for item in &candidates {
        match matches_details(expectation, item) {
            Ok(()) => return Ok(()),
            Err(reason) => reasons.push(reason),
        }
    }
    Err(reasons.join("; "))
}

/// Checks op, kind and exact field values.
fn matches_shape(expectation: &Value, operation: &Value) -> bool {
    if let Some(op) = expectation.get("op") {
        if &operation["action"] != op {
            return false;
        }
    }
    if let Some(kind) = expectation.get("kind") {
        if &operation["kind"] != kind {
            return false;
        }
    }
    let columns = columns(operation);
    expectation["fields"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(name, expected)| {
            columns
                .get(name)
                .is_some_and(|actual| same(actual, expected))
        })
}

/// Compares JSON values, numbers by value so that 50 equals 50.0.
fn same(actual: &Value, expected: &Value) -> bool {
    match (actual.as_f64(), expected.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        _ => actual == expected,
    }
}

/// Checks the per-item properties: name and code patterns, interval and citations.
fn matches_details(expectation: &Value, item: &Value) -> Result<(), String> {
    let operation = &item["operation"];
    let columns = columns(operation);
    if let Some(pattern) = expectation["name_matches"].as_str() {
        // Checkpoints have no name column: their code and zone name the place instead.
        let text = match columns.get("name").and_then(Value::as_str) {
            Some(name) => name.to_string(),
            None => format!(
                "{} {}",
                columns.get("code").and_then(Value::as_str).unwrap_or(""),
                columns
                    .get("zone_code")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ),
        };
        if !pattern_matches(pattern, &text) {
            return Err(format!("{text:?} does not match {pattern:?}"));
        }
    }
    if let Some(pattern) = expectation["code_matches"].as_str() {
        let code = columns.get("code").and_then(Value::as_str).unwrap_or("");
        if !pattern_matches(pattern, code) {
            return Err(format!("code {code:?} does not match {pattern:?}"));
        }
    }
    if let Some(max_days) = expectation["max_interval_days"].as_f64() {
        let days =
            interval_days(&columns).ok_or_else(|| format!("{} has no interval", operation))?;
        if days > max_days {
            return Err(format!(
                "interval of {days} days, expected at most {max_days}"
            ));
        }
    }
    if let Some(file) = expectation["cites"].as_str() {
        let cited = item["citations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|citation| citation["document_title"] == file);
        if !cited {
            return Err(format!(
                "{} cites {}, not {file}",
                columns
                    .get("code")
                    .or(columns.get("name"))
                    .unwrap_or(&Value::Null),
                item["citations"]
            ));
        }
    }
    Ok(())
}

fn pattern_matches(pattern: &str, text: &str) -> bool {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .build()
        .unwrap()
        .is_match(text)
}

/// Returns a maintenance interval in days, counting a month as 31 and a year as 366 days, so
/// that "at least this often" holds for the longest month and year.
fn interval_days(columns: &Map<String, Value>) -> Option<f64> {
    let count = columns.get("interval_count")?.as_f64()?;
    let unit = match columns.get("interval_unit")?.as_str()? {
        "day" => 1.0,
        "week" => 7.0,
        "month" => 31.0,
        "year" => 366.0,
        _ => return None,
    };
    Some(count * unit)
}

/// Checks a forbidden pattern: op, kind, and for shifts `days_include`.
fn matches_forbidden(forbidden: &Value, operation: &Value) -> bool {
    if !matches_shape(forbidden, operation) {
        return false;
    }
    match forbidden["days_include"].as_array() {
        Some(days) => {
            let weekdays = columns(operation)
                .get("weekdays")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            days.iter().any(|day| weekdays.contains(day))
        }
        None => true,
    }
}

const WEEK: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Returns the minutes of each weekday that the shifts cover together. A shift whose end is
/// not after its start runs past midnight into the next day.
fn daily_coverage(shifts: &[&Value]) -> BTreeMap<&'static str, u32> {
    let mut covered: BTreeMap<&'static str, Vec<bool>> = WEEK
        .iter()
        .map(|day| (*day, vec![false; 24 * 60]))
        .collect();
    for shift in shifts {
        let columns = columns(shift);
        let (Some(start), Some(end)) = (
            columns
                .get("start_time")
                .and_then(Value::as_str)
                .and_then(minutes),
            columns
                .get("end_time")
                .and_then(Value::as_str)
                .and_then(minutes),
        ) else {
            continue;
        };
        let days = columns
            .get("weekdays")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for day in days.iter().filter_map(Value::as_str) {
            let Some(index) = WEEK.iter().position(|name| *name == day) else {
                continue;
            };
            let next = WEEK[(index + 1) % 7];
            if end > start {
                mark(covered.get_mut(WEEK[index]).unwrap(), start, end);
            } else {
                mark(covered.get_mut(WEEK[index]).unwrap(), start, 24 * 60);
                mark(covered.get_mut(next).unwrap(), 0, end);
            }
        }
    }
    covered
        .into_iter()
        .map(|(day, minutes)| {
            (
                day,
                minutes.iter().filter(|covered| **covered).count() as u32,
            )
        })
        .collect()
}

fn mark(day: &mut [bool], from: usize, to: usize) {
    for minute in day.iter_mut().take(to).skip(from) {
        *minute = true;
    }
}

/// Parses "HH:MM" into minutes after midnight.
fn minutes(text: &str) -> Option<usize> {
    let (hours, minutes) = text.split_once(':')?;
    let hours: usize = hours.parse().ok()?;
    let minutes: usize = minutes.get(..2).unwrap_or(minutes).parse().ok()?;
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

#[test]
fn coverage_counts_shifts_past_midnight() {
    let day = json!({"key": {"name": "Day"}, "fields": {"start_time": "08:00", "end_time": "20:00", "weekdays": ["mon"]}});
    let night = json!({"key": {"name": "Night"}, "fields": {"start_time": "20:00", "end_time": "08:00", "weekdays": ["sun", "mon"]}});
    let coverage = daily_coverage(&[&day, &night]);
    assert_eq!(coverage["mon"], 24 * 60);
    assert_eq!(coverage["tue"], 8 * 60);
    assert_eq!(coverage["sun"], 4 * 60);
    assert_eq!(coverage["wed"], 0);
}

#[test]
fn forbidden_days_match_shift_weekdays() {
    let weekend =
        json!({"kind": "shift", "action": "create", "key": {}, "fields": {"weekdays": ["sat"]}});
    let forbidden = json!({"kind": "shift", "days_include": ["sat", "sun"]});
    assert!(matches_forbidden(&forbidden, &weekend));
    let weekday =
        json!({"kind": "shift", "action": "create", "key": {}, "fields": {"weekdays": ["mon"]}});
    assert!(!matches_forbidden(&forbidden, &weekday));
}

/// Every scenario twice: with the offline rules, then with maker and checker output from a
/// fake OpenAI-compatible server that cites a chunk it was never given and, in the two-approver
/// scenario, deletes an existing zone while claiming the change carries no risk.
#[tokio::test]
async fn scenarios_meet_their_expectations() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shared_dir("scenarios"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files found");
    let scenarios: Vec<Value> = files
        .iter()
        .map(|path| serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
        .collect();

    let mut stage = Stage::start().await;
    stage.publish_corpus().await;

    let mut failures = Vec::new();
    for scenario in &scenarios {
        let outcome = stage.run_scenario(scenario, None).await;
        assert_eq!(
            outcome.run["maker_source"],
            "the offline rules, because no model provider is configured",
            "{}",
            outcome.run
        );
        failures.extend(outcome.failures);
        stage.cancel(&outcome.conversation).await;
    }

    let old_zone = stage.old_depot().await;
    let server = FakeServer::start(Flavor::OpenAi).await;
    stage.workers.abort();
    stage.workers = start_workers(
        &stage.app.pool,
        Some(openai_gateway(&stage.app.pool, &server)),
    );
    let mut deletes_checked = 0;
    for scenario in &scenarios {
        let name = scenario["name"].as_str().unwrap();
        let invented = Uuid::new_v4();
        let delete = (scenario["tier"] == "two").then(|| old_zone.clone());
        let chunks_seen = Arc::new(AtomicUsize::new(0));
        server.push(Reply::Computed(fake_maker(
            invented,
            delete.clone(),
            Arc::clone(&chunks_seen),
        )));
        server.push(Reply::Computed(fake_checker()));
        let deletion = delete.as_ref().map(|(site, zone)| deletion_of(site, zone));
        let outcome = stage.run_scenario(scenario, deletion.as_ref()).await;
        failures.extend(
            outcome
                .failures
                .iter()
                .map(|failure| format!("through the fake OpenAI server, {failure}")),
        );
        assert_eq!(
            server.pending(),
            0,
            "{name}: the maker and the checker were asked"
        );

        assert_eq!(outcome.run["removed_unknown"], 1, "{name}: {}", outcome.run);
        for source in ["maker_source", "checker_source"] {
            assert_eq!(
                outcome.run[source], "gpt-fake through the openai_compatible provider",
                "{name}: {source}"
            );
        }
        let cited: Vec<&Value> = outcome.run["items"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|item| item["citations"].as_array().unwrap())
            .map(|citation| &citation["chunk_id"])
            .collect();
        if chunks_seen.load(Ordering::SeqCst) > 0 {
            assert!(!cited.is_empty(), "{name}: real citations are kept");
        }
        assert!(
            !cited.contains(&&json!(invented)),
            "{name}: the invented citation was removed"
        );

        if let Some((site, zone)) = delete {
            let preview = outcome.change_set["preview"]["items"].as_array().unwrap();
            let deletion = preview
                .iter()
                .find(|item| {
                    item["operation"]["action"] == "delete"
                        && item["operation"]["key"] == json!({"site_code": site, "code": zone})
                })
                .unwrap_or_else(|| panic!("{name}: the deletion is in the change set"));
            assert_eq!(deletion["risk"], 0.3, "{name}: a deletion's own risk");
            assert_eq!(
                outcome.change_set["tier"], "two_approvers",
                "{name}: {}",
                outcome.change_set["preview"]["assessment"]
            );
            deletes_checked += 1;
        }
        stage.cancel(&outcome.conversation).await;
    }
    assert_eq!(deletes_checked, 1, "one scenario needs two approvers");
    assert!(
        failures.is_empty(),
        "{} unmet expectations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
