//! The `server` binary's operator commands, run as a separate process.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::TestApp;
use reqwest::StatusCode;
use serde_json::Value;

/// Runs `server` with `args` against the test database, feeding `stdin`; returns stdout.
fn run(app_db: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(args)
        .env("DATABASE_URL", app_db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("server binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn database_url(app: &TestApp) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let mut url = reqwest::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

#[tokio::test]
async fn admin_commands_create_tenant_user_and_token() {
    let app = TestApp::spawn().await;
    let db = database_url(&app).await;

    let (ok, out, err) = run(
        &db,
        &[
            "admin",
            "create-tenant",
            "--slug",
            "acme",
            "--name",
            "Acme Ltd",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("created tenant acme"), "{out}");

    let (ok, out, err) = run(
        &db,
        &[
            "admin",
            "create-user",
            "--tenant",
            "acme",
            "--email",
            "Boss@Acme.test",
            "--role",
            "manager",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("boss@acme.test"), "{out}");
    assert!(
        !out.contains("a long enough password"),
        "a given password is never echoed"
    );

    let (ok, out, err) = run(
        &db,
        &[
            "admin",
            "create-token",
            "--email",
            "boss@acme.test",
            "--name",
            "ci",
        ],
        None,
    );
    assert!(ok, "{err}");
    let token = out.lines().last().unwrap().trim().to_string();
    assert!(token.starts_with("slt_"), "{out}");

    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_tokens WHERE token_hash = sha256($1::bytea)")
            .bind(token.as_bytes())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1, "only the hash is stored");

    let me = reqwest::Client::new()
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["tenant_slug"], "acme");
    assert_eq!(body["roles"], serde_json::json!(["manager", "admin"]));
}

#[tokio::test]
async fn seed_demo_is_idempotent() {
    let app = TestApp::spawn().await;
    let db = database_url(&app).await;

    let (ok, first, err) = run(&db, &["admin", "seed-demo"], None);
    assert!(ok, "{err}");
    assert_eq!(first.matches("password:").count(), 4, "{first}");

    let (ok, second, err) = run(&db, &["admin", "seed-demo"], None);
    assert!(ok, "{err}");
    assert_eq!(second.matches("password unchanged").count(), 4, "{second}");

    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 4, "a manager, two approvers and an admin");
}

#[tokio::test]
async fn bad_input_exits_with_clear_error() {
    let app = TestApp::spawn().await;
    let db = database_url(&app).await;

    let (ok, _, err) = run(
        &db,
        &[
            "admin",
            "create-user",
            "--tenant",
            "missing",
            "--email",
            "a@b.test",
            "--role",
            "admin",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("no tenant with slug missing"), "{err}");

    let (ok, _, err) = run(
        &db,
        &[
            "admin",
            "create-tenant",
            "--slug",
            "Bad Slug!",
            "--name",
            "x",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("slug must be"), "{err}");
}

#[test]
fn help_documents_every_subcommand() {
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["serve", "web", "worker", "migrate", "admin"] {
        assert!(help.contains(command), "missing {command} in:\n{help}");
    }
    let admin = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["admin", "--help"])
        .output()
        .unwrap();
    let admin_help = String::from_utf8_lossy(&admin.stdout);
    for command in ["create-tenant", "create-user", "create-token", "seed-demo"] {
        assert!(
            admin_help.contains(command),
            "missing {command} in:\n{admin_help}"
        );
    }
}

#[tokio::test]
async fn set_password_ends_existing_sessions() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let db = database_url(&app).await;
    let email = tenant.email(backend::accounts::Role::Manager);
    let browser = app.browser();
    app.login(&browser, &email, &tenant.password).await;
    let before = browser.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(before.status(), StatusCode::OK);

    let (ok, out, err) = run(&db, &["admin", "set-password", "--email", &email], None);
    assert!(ok, "{err}");
    assert!(out.contains("password (shown once):"), "{out}");

    let after = browser.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let old_password = app.login(&app.browser(), &email, &tenant.password).await;
    assert_eq!(old_password.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn dead_letter_commands_list_show_retry_discard() {
    let app = TestApp::spawn().await;
    let db = database_url(&app).await;
    app.tenant("ops").await;

    let (ok, out, err) = run(
        &db,
        &[
            "jobs",
            "demo-fail",
            "--tenant",
            "ops",
            "--class",
            "permanent",
        ],
        None,
    );
    assert!(ok, "demo-fail failed: {err}");
    assert!(out.starts_with("queued demo.fail job "), "{out}");
    let (ok, _, err) = run(
        &db,
        &["jobs", "demo-fail", "--tenant", "ops", "--class", "flaky"],
        None,
    );
    assert!(!ok);
    assert!(err.contains("unknown error class 'flaky'"), "{err}");

    // The app started here runs no workers, so run the job through one that has demo.fail.
    let settings = backend::jobs::JobSettings {
        demo_jobs: true,
        poll_interval: std::time::Duration::from_millis(100),
        ..Default::default()
    };
    let pool = app.pool.clone();
    let workers = tokio::spawn(server::workers::run(pool, settings, std::future::pending()));
    let mut id = String::new();
    for _ in 0..100 {
        let (_, out, _) = run(&db, &["dead-letters", "list", "--class", "permanent"], None);
        if let Some(first) = out
            .split_whitespace()
            .next()
            .filter(|word| word.len() == 36)
        {
            id = first.to_string();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    workers.abort();
    assert!(!id.is_empty(), "the failed job never reached dead letters");

    let (ok, out, err) = run(&db, &["dead-letters", "show", &id], None);
    assert!(ok, "{err}");
    let detail: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(detail["kind"], "demo.fail");
    assert_eq!(detail["error_class"], "permanent");

    let (ok, _, err) = run(
        &db,
        &["dead-letters", "discard", &id, "--reason", " "],
        None,
    );
    assert!(!ok);
    assert!(err.contains("needs a reason"), "{err}");
    let (ok, out, err) = run(&db, &["dead-letters", "retry", &id], None);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("retried {id}"));
    let (ok, out, _) = run(&db, &["dead-letters", "retry", &id], None);
    assert!(ok);
    assert!(out.starts_with(&format!("skipped {id}")), "{out}");
    let (ok, _, err) = run(&db, &["dead-letters", "show", "not-a-uuid"], None);
    assert!(!ok);
    assert!(
        err.contains("'not-a-uuid' is not a dead letter id"),
        "{err}"
    );

    let (_, out, _) = run(&db, &["dead-letters", "list", "--status", "retried"], None);
    assert!(out.contains(&id), "{out}");
    let (ok, _, err) = run(&db, &["dead-letters", "list", "--status", "gone"], None);
    assert!(!ok);
    assert!(err.contains("unknown status 'gone'"), "{err}");
}

#[tokio::test]
async fn openai_embeddings_need_their_model_named() {
    let app = TestApp::spawn().await;
    let db = database_url(&app).await;

    // Nothing listens on the discard port; the worker must refuse before it sends anything.
    let (ok, _, err) = run(
        &db,
        &[
            "worker",
            "--embedding-backend",
            "openai",
            "--openai-base-url",
            "http://127.0.0.1:9/v1",
            "--openai-model",
            "chat-model",
        ],
        None,
    );
    assert!(!ok, "the worker started without an embedding model: {err}");
    assert!(err.contains("OPENAI_EMBEDDING_MODEL"), "{err}");

    let (ok, _, err) = run(&db, &["worker", "--embedding-backend", "openai"], None);
    assert!(!ok, "the worker started without a server: {err}");
    assert!(err.contains("OPENAI_BASE_URL"), "{err}");
}

#[tokio::test]
async fn short_provider_call_retention_rejected() {
    let app = TestApp::spawn().await;
    let db = database_url(&app).await;

    // A week would delete calls the monthly budget still counts.
    let (ok, _, err) = run(
        &db,
        &["worker", "--provider-call-retention-days", "7"],
        None,
    );
    assert!(!ok, "the worker started with a 7-day retention: {err}");
    assert!(err.contains("PROVIDER_CALL_RETENTION_DAYS"), "{err}");
    assert!(err.contains("at least 32"), "{err}");
    assert!(err.contains("got 7"), "{err}");
}

#[tokio::test]
async fn embedding_dimensions_must_fit_store() {
    let app = TestApp::spawn().await;
    let db = database_url(&app).await;

    // text-embedding-3-small returns 1536 numbers unless asked for fewer.
    let (ok, _, err) = run(
        &db,
        &[
            "worker",
            "--embedding-backend",
            "openai",
            "--openai-base-url",
            "http://127.0.0.1:9/v1",
            "--openai-model",
            "chat-model",
            "--openai-embedding-model",
            "text-embedding-3-small",
            "--openai-embedding-dimensions",
            "1536",
        ],
        None,
    );
    assert!(!ok, "the worker started with 1536 dimensions: {err}");
    assert!(
        err.contains("OPENAI_EMBEDDING_DIMENSIONS must be 384"),
        "{err}"
    );
    assert!(err.contains("got 1536"), "{err}");
}
