//! The job system against real PostgreSQL and real apalis workers: the retry table, dead
//! letters, scheduled jobs, and a worker process killed mid-job.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use backend::jobs::demo::{DemoArgs, DEMO_KIND};
use backend::jobs::policy::RetryRule;
use backend::jobs::{ErrorClass, JobSettings, NewJob, RetryPolicy};
use serde_json::{json, Value};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// Builds a retry table with the default table's shape and growth, scaled down to milliseconds
/// so a test observes every attempt.
fn fast_policy() -> RetryPolicy {
    let rule = |retries: Option<u32>, base_ms: u64, factor: u32, cap_ms: u64| RetryRule {
        max_retries: retries,
        base: Duration::from_millis(base_ms),
        factor,
        cap: Duration::from_millis(cap_ms),
    };
    RetryPolicy {
        database: rule(Some(3), 100, 2, 30_000),
        network: rule(Some(5), 100, 2, 300),
        model_provider: rule(Some(4), 100, 3, 1_000),
        rate_limited: rule(Some(8), 50, 2, 400),
        circuit_open: rule(None, 100, 1, 100),
        max_attempts_per_run: 10,
    }
}

fn fast_settings() -> JobSettings {
    JobSettings {
        policy: fast_policy(),
        poll_interval: Duration::from_millis(100),
        concurrency: 8,
        demo_jobs: true,
        upkeep_interval: Duration::from_secs(3600),
        ..JobSettings::default()
    }
}

fn start_workers(pool: &PgPool, settings: JobSettings) -> tokio::task::JoinHandle<()> {
    let pool = pool.clone();
    tokio::spawn(async move {
        server::workers::run(pool, settings, std::future::pending())
            .await
            .expect("workers failed");
    })
}

async fn tenant(pool: &PgPool) -> Uuid {
    let slug = format!("t{}", &Uuid::new_v4().simple().to_string()[..10]);
    backend::accounts::create_tenant(pool, &slug, "Jobs test")
        .await
        .unwrap()
        .id
        .0
}

async fn queue_demo(pool: &PgPool, tenant: Uuid, args: DemoArgs) -> Uuid {
    let job = NewJob::new(DEMO_KIND, serde_json::to_value(args).unwrap(), "test").tenant(tenant);
    backend::jobs::enqueue_now(pool, job).await.unwrap().job_id
}

async fn job_status(pool: &PgPool, job_id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM job_ledger WHERE id = $1")
        .bind(job_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until every job is in one of `statuses`, or panics after `limit`.
async fn wait_for_status(pool: &PgPool, jobs: &[Uuid], statuses: &[&str], limit: Duration) {
    let statuses: Vec<String> = statuses.iter().map(|status| status.to_string()).collect();
    let started = std::time::Instant::now();
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM job_ledger WHERE id = ANY($1) AND NOT (status = ANY($2))",
        )
        .bind(jobs)
        .bind(&statuses)
        .fetch_one(pool)
        .await
        .unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{pending} of {} jobs not in {statuses:?} after {limit:?}",
            jobs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn parse_time(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(
        value.as_str().expect("timestamp"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

async fn history(pool: &PgPool, job_id: Uuid) -> Vec<Value> {
    let history: Value = sqlx::query_scalar("SELECT history FROM job_ledger WHERE id = $1")
        .bind(job_id)
        .fetch_one(pool)
        .await
        .unwrap();
    history.as_array().unwrap().clone()
}

#[tokio::test]
async fn error_classes_follow_retry_table() {
    let pool = backend::testing::fresh_pool().await;
    let tenant = tenant(&pool).await;
    let policy = fast_policy();

    // (class, retry_after_ms, expected attempts)
    let cases = [
        (ErrorClass::Database, None, 4),
        (ErrorClass::Network, None, 6),
        (ErrorClass::ModelProvider, None, 5),
        (ErrorClass::RateLimited, None, 9),
        (ErrorClass::RateLimited, Some(300), 9),
        (ErrorClass::CircuitOpen, Some(150), 10),
        (ErrorClass::Permanent, None, 1),
    ];
    let mut jobs = Vec::new();
    for (class, retry_after_ms, _) in cases {
        let args = DemoArgs {
            class: Some(class),
            retry_after_ms,
            ..DemoArgs::default()
        };
        jobs.push(queue_demo(&pool, tenant, args).await);
    }
    let workers = start_workers(&pool, fast_settings());
    wait_for_status(&pool, &jobs, &["dead"], Duration::from_secs(60)).await;
    workers.abort();

    for ((class, retry_after_ms, expected_attempts), job_id) in cases.into_iter().zip(&jobs) {
        let label = format!("{class} (retry_after_ms {retry_after_ms:?})");
        let entries = history(&pool, *job_id).await;
        assert_eq!(entries.len(), expected_attempts, "{label}: attempts");
        assert!(
            entries.iter().all(|entry| entry["class"] == class.as_str()),
            "{label}: every attempt has the class"
        );
        assert_eq!(entries.last().unwrap()["outcome"], "dead", "{label}");

        let rule = policy.rule(class);
        for (retry, pair) in entries.windows(2).enumerate() {
            let (failed, next) = (&pair[0], &pair[1]);
            assert_eq!(failed["outcome"], "retry", "{label}: attempt {retry}");
            let nominal = failed["nominal_delay_ms"].as_u64().unwrap();
            let delay = failed["delay_ms"].as_u64().unwrap();
            let expected_nominal = match retry_after_ms {
                Some(wait) => wait,
                None => rule.unwrap().delay(retry as u32).as_millis() as u64,
            };
            assert_eq!(
                nominal, expected_nominal,
                "{label}: nominal delay of retry {retry}"
            );
            if retry_after_ms.is_some() {
                assert!(
                    delay >= nominal && delay <= nominal + nominal / 10 + 1,
                    "{label}: delay {delay} ms must honour Retry-After {nominal} ms"
                );
            } else {
                assert!(
                    delay >= nominal / 2 && delay <= nominal,
                    "{label}: delay {delay} ms outside 50-100 % of {nominal} ms"
                );
            }
            // The next attempt never starts before its scheduled time.
            let scheduled = parse_time(&failed["next_run_at"]);
            let started = parse_time(&next["started_at"]);
            assert!(
                started >= scheduled,
                "{label}: retry {retry} started {started} before its time {scheduled}"
            );
        }

        let dead_letters: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dead_letters WHERE job_id = $1 AND error_class = $2",
        )
        .bind(job_id)
        .bind(class.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(dead_letters, 1, "{label}: one dead letter");
    }
}

#[tokio::test]
async fn thousand_failures_give_thousand_dead_letters() {
    let pool = backend::testing::fresh_pool().await;
    let tenant = tenant(&pool).await;
    let args = serde_json::to_value(DemoArgs::default()).unwrap();
    let mut tx = pool.begin().await.unwrap();
    let mut jobs = Vec::new();
    for _ in 0..1000 {
        let job = NewJob::new(DEMO_KIND, args.clone(), "bulk").tenant(tenant);
        jobs.push(backend::jobs::enqueue(&mut tx, job).await.unwrap().job_id);
    }
    tx.commit().await.unwrap();

    // Two worker instances compete for the same rows, as two processes would.
    let first = start_workers(&pool, fast_settings());
    let second = start_workers(&pool, fast_settings());
    wait_for_status(&pool, &jobs, &["dead"], Duration::from_secs(300)).await;
    first.abort();
    second.abort();

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&pool)
        .await
        .unwrap();
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT job_id) FROM dead_letters")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1000);
    assert_eq!(distinct, 1000);
}

#[tokio::test]
async fn scheduled_job_waits_for_its_time() {
    let pool = backend::testing::fresh_pool().await;
    let tenant = tenant(&pool).await;
    let args = serde_json::to_value(DemoArgs {
        fail_attempts: Some(0),
        effect: Some(true),
        ..DemoArgs::default()
    })
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let later = NewJob::new(DEMO_KIND, args.clone(), "test")
        .tenant(tenant)
        .run_at(now + time::Duration::hours(1));
    let later = backend::jobs::enqueue_now(&pool, later)
        .await
        .unwrap()
        .job_id;
    let soon_at = now + time::Duration::seconds(2);
    let soon = NewJob::new(DEMO_KIND, args, "test")
        .tenant(tenant)
        .run_at(soon_at);
    let soon = backend::jobs::enqueue_now(&pool, soon)
        .await
        .unwrap()
        .job_id;

    let workers = start_workers(&pool, fast_settings());
    wait_for_status(&pool, &[soon], &["succeeded"], Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    workers.abort();

    let started: OffsetDateTime =
        sqlx::query_scalar("SELECT started_at FROM job_ledger WHERE id = $1")
            .bind(soon)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        started >= soon_at,
        "the 2 s job started at {started}, before {soon_at}"
    );

    assert_eq!(job_status(&pool, later).await, "queued");
    let deliveries: i32 = sqlx::query_scalar("SELECT deliveries FROM job_ledger WHERE id = $1")
        .bind(later)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(deliveries, 0, "the job an hour ahead was not delivered");
    let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM demo_effects WHERE job_id = $1")
        .bind(later)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(effects, 0);
}

/// A job scheduled for later runs on time when no notification ever arrives, as after the
/// listening connection failed for good: the poll ticker alone wakes the worker. With the
/// timer after the ended stream, or with apalis's own interval first, the worker slept until
/// its next heartbeat 20 s later (always, or in about one run in five).
#[tokio::test]
async fn scheduled_job_runs_without_notifications() {
    let pool = backend::testing::fresh_pool().await;
    let tenant = tenant(&pool).await;
    let args = serde_json::to_value(DemoArgs {
        fail_attempts: Some(0),
        ..DemoArgs::default()
    })
    .unwrap();
    let due = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let job = NewJob::new(DEMO_KIND, args, "test")
        .tenant(tenant)
        .run_at(due);
    let job = backend::jobs::enqueue_now(&pool, job).await.unwrap().job_id;

    let settings = fast_settings();
    let services = backend::jobs::Services::local(&pool, &settings);
    let silent = futures::stream::empty::<()>();
    let wake = backend::jobs::wake::with_notifications(settings.poll_interval, silent);
    let worker_pool = pool.clone();
    let workers = tokio::spawn(async move {
        server::workers::run_with(
            worker_pool,
            settings,
            services,
            wake,
            std::future::pending(),
        )
        .await
        .expect("workers failed");
    });
    wait_for_status(&pool, &[job], &["succeeded"], Duration::from_secs(10)).await;
    workers.abort();
}

#[tokio::test]
async fn panicking_handler_leaves_worker_running() {
    let pool = backend::testing::fresh_pool().await;
    let tenant = tenant(&pool).await;
    let panics = queue_demo(
        &pool,
        tenant,
        DemoArgs {
            panic: Some(true),
            ..DemoArgs::default()
        },
    )
    .await;
    let workers = start_workers(&pool, fast_settings());
    wait_for_status(&pool, &[panics], &["dead"], Duration::from_secs(20)).await;

    let after = queue_demo(
        &pool,
        tenant,
        DemoArgs {
            fail_attempts: Some(0),
            ..DemoArgs::default()
        },
    )
    .await;
    wait_for_status(&pool, &[after], &["succeeded"], Duration::from_secs(20)).await;
    workers.abort();

    let chain: Value = sqlx::query_scalar("SELECT error_chain FROM dead_letters WHERE job_id = $1")
        .bind(panics)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        chain[0].as_str().unwrap().contains("panicked"),
        "error chain: {chain}"
    );
}

#[tokio::test]
async fn dead_letter_payload_is_sanitized() {
    let pool = backend::testing::fresh_pool().await;
    let tenant = tenant(&pool).await;
    let job = queue_demo(
        &pool,
        tenant,
        DemoArgs {
            data: Some(json!({
                "site": "WH-01",
                "contact": {"email": "ops.lead@example.com", "password": "hunter2"},
                "headers": {"Authorization": "Bearer abc.def.ghi"},
                "args": ["--token", "s3cr3t-value", "--site", "WH-01"],
            })),
            ..DemoArgs::default()
        },
    )
    .await;
    let workers = start_workers(&pool, fast_settings());
    wait_for_status(&pool, &[job], &["dead"], Duration::from_secs(20)).await;
    workers.abort();

    let payload: Value = sqlx::query_scalar("SELECT payload FROM dead_letters WHERE job_id = $1")
        .bind(job)
        .fetch_one(&pool)
        .await
        .unwrap();
    let text = payload.to_string();
    for secret in [
        "ops.lead@example.com",
        "hunter2",
        "abc.def.ghi",
        "s3cr3t-value",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
    assert_eq!(
        payload["data"]["site"], "WH-01",
        "harmless values stay: {text}"
    );
    assert_eq!(
        payload["data"]["args"][3], "WH-01",
        "harmless args stay: {text}"
    );
}

/// Builds the URL of the test's own database, for a worker process started from the binary.
async fn database_url(pool: &PgPool) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut url = reqwest::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn spawn_worker_process(database_url: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("worker")
        .env("DATABASE_URL", database_url)
        .env("DEMO_JOBS", "true")
        .env("JOB_HEARTBEAT_SECONDS", "1")
        .env("JOB_MISSED_HEARTBEATS", "2")
        .env("JOB_POLL_MS", "100")
        .env("UPKEEP_SECONDS", "3600")
        .env("LOG_FORMAT", "text")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cannot start the server binary")
}

#[tokio::test]
async fn killed_worker_job_runs_once() {
    let pool = backend::testing::fresh_pool().await;
    let tenant = tenant(&pool).await;
    let url = database_url(&pool).await;
    let job = queue_demo(
        &pool,
        tenant,
        DemoArgs {
            fail_attempts: Some(0),
            effect: Some(true),
            sleep_ms: Some(60_000),
            sleep_first_delivery_only: Some(true),
            ..DemoArgs::default()
        },
    )
    .await;

    let mut first = spawn_worker_process(&url);
    // The handler writes its effect, then sleeps: kill the process inside that sleep.
    let started = std::time::Instant::now();
    loop {
        let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM demo_effects")
            .fetch_one(&pool)
            .await
            .unwrap();
        if effects == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the job never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().expect("SIGKILL failed");
    first.wait().unwrap();
    assert_eq!(job_status(&pool, job).await, "running");

    let mut second = spawn_worker_process(&url);
    wait_for_status(
        &pool,
        &[job],
        &["succeeded", "dead"],
        Duration::from_secs(60),
    )
    .await;
    second.kill().unwrap();
    second.wait().unwrap();

    assert_eq!(job_status(&pool, job).await, "succeeded");
    let deliveries: i32 = sqlx::query_scalar("SELECT deliveries FROM job_ledger WHERE id = $1")
        .bind(job)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(deliveries, 2, "the attempt was handed to the second worker");
    let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM demo_effects")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(effects, 1, "the effect happened once");
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(dead, 0);
}

#[tokio::test]
async fn concurrent_retries_queue_each_job_once() {
    let app = common::TestApp::spawn().await;
    let slug = "retries";
    app.tenant(slug).await;
    let tenant: Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let token = app.token(&format!("admin@{slug}.test")).await;

    // Jobs that fail once (dead at once, permanent) and succeed when retried.
    let mut jobs = Vec::new();
    for _ in 0..20 {
        let args = DemoArgs {
            fail_attempts: Some(1),
            ..DemoArgs::default()
        };
        jobs.push(queue_demo(&app.pool, tenant, args).await);
    }
    let workers = start_workers(&app.pool, fast_settings());
    wait_for_status(&app.pool, &jobs, &["dead"], Duration::from_secs(30)).await;

    let ids: Vec<String> = sqlx::query_scalar("SELECT id::text FROM dead_letters")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(ids.len(), 20);
    let body = json!({ "ids": ids });
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(app.url("/api/v1/dead-letters/retry"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let (first, second) = tokio::join!(send(), send());
    let first: Value = first.unwrap().json().await.unwrap();
    let second: Value = second.unwrap().json().await.unwrap();
    let retried: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|report| report["retried"].as_array().unwrap().clone())
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = retried.iter().collect();
    assert_eq!(
        retried.len(),
        20,
        "each dead letter retried by exactly one call: {first} {second}"
    );
    assert_eq!(unique.len(), 20);

    wait_for_status(&app.pool, &jobs, &["succeeded"], Duration::from_secs(30)).await;
    workers.abort();
    // Two deliveries per job in the queue: the first attempt and the one retry.
    let deliveries: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = 'siteline' \
           AND convert_from(job, 'UTF8')::jsonb->>'kind' = 'demo.fail' \
         GROUP BY convert_from(job, 'UTF8')::jsonb->>'job_id'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(deliveries.len(), 20);
    assert!(deliveries.iter().all(|count| *count == 2), "{deliveries:?}");

    // A third submit of the same selection is all skipped.
    let third: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(third["retried"], json!([]));
    assert_eq!(third["skipped"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn critical_dead_letter_posts_alert() {
    use axum::routing::post;
    use std::sync::{Arc, Mutex};

    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let store = received.clone();
    let webhook = axum::Router::new().route(
        "/hooks/alerts",
        post(move |axum::Json(body): axum::Json<Value>| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, webhook).await.unwrap() });

    let pool = backend::testing::fresh_pool().await;
    let tenant = tenant(&pool).await;
    let critical = NewJob::new(DEMO_KIND, json!({}), "corr-critical")
        .tenant(tenant)
        .critical(true);
    let critical = backend::jobs::enqueue_now(&pool, critical)
        .await
        .unwrap()
        .job_id;
    let plain = queue_demo(&pool, tenant, DemoArgs::default()).await;

    let settings = JobSettings {
        alert_webhook_url: Some(format!("http://{addr}/hooks/alerts")),
        outbound_loopback_exceptions: vec![addr],
        public_url: Some("https://siteline.example".to_string()),
        ..fast_settings()
    };
    let workers = start_workers(&pool, settings);
    wait_for_status(
        &pool,
        &[critical, plain],
        &["dead"],
        Duration::from_secs(20),
    )
    .await;
    let started = std::time::Instant::now();
    while received.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    workers.abort();

    let dead_letter: Uuid = sqlx::query_scalar("SELECT id FROM dead_letters WHERE job_id = $1")
        .bind(critical)
        .fetch_one(&pool)
        .await
        .unwrap();
    let messages = received.lock().unwrap().clone();
    assert_eq!(
        messages.len(),
        1,
        "one alert, for the critical job only: {messages:?}"
    );
    let message = &messages[0];
    let text = message["text"].as_str().unwrap();
    assert!(text.contains("demo.fail"), "{text}");
    let body = message.to_string();
    assert!(body.contains(&dead_letter.to_string()), "{body}");
    assert!(body.contains("corr-critical"), "{body}");
    assert!(
        body.contains("https://siteline.example/admin/dead-letters/"),
        "{body}"
    );
}
