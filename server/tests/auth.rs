//! Sign-in, sessions and throttling through the login server function.

mod common;

use std::time::Duration;

use backend::accounts::Role;
use backend::settings::Settings;
use common::{session_cookie, TestApp};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn login_sets_session_and_me_answers() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let browser = app.browser();

    let login = app
        .login(&browser, &tenant.email(Role::Manager), &tenant.password)
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.headers()["location"], "/chat");
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_string())
        .find(|value| value.starts_with("siteline_session="))
        .expect("session cookie set");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");

    let me: Value = browser
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "manager@acme.test");
}

#[tokio::test]
async fn wrong_password_answers_401_with_one_message() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let browser = app.browser();

    let wrong = app
        .login(&browser, &tenant.email(Role::Manager), "not the password")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong_text = wrong.text().await.unwrap();
    assert!(
        wrong_text.contains("Email or password is incorrect"),
        "{wrong_text}"
    );

    let unknown = app
        .login(&browser, "nobody@acme.test", "not the password")
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        unknown.text().await.unwrap(),
        wrong_text,
        "unknown email must look the same"
    );
}

#[tokio::test]
async fn cookie_from_before_login_is_dead_after() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    // An attacker plants a session they know the id of, then the victim signs in with it.
    let planted = "AAAAAAAAAAAAAAAAAAAAAA";
    sqlx::query(
        "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, '{}', now() + interval '1 hour')",
    )
    .bind(planted)
    .execute(&app.pool)
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let login = client
        .post(app.url("/sfn/login"))
        .header("cookie", format!("siteline_session={planted}"))
        .header("origin", &app.base)
        .form(&[
            ("email", tenant.email(Role::Manager).as_str()),
            ("password", tenant.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let fresh = session_cookie(&login).expect("a new session cookie");
    assert_ne!(fresh, format!("siteline_session={planted}"));

    let with_planted = client
        .get(app.url("/api/v1/me"))
        .header("cookie", format!("siteline_session={planted}"))
        .send()
        .await
        .unwrap();
    assert_eq!(with_planted.status(), StatusCode::UNAUTHORIZED);

    let with_fresh = client
        .get(app.url("/api/v1/me"))
        .header("cookie", &fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(with_fresh.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_ends_session() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let browser = app.browser();
    app.login(&browser, &tenant.email(Role::Admin), &tenant.password)
        .await;
    assert_eq!(
        browser
            .get(app.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let logout = browser.post(app.url("/sfn/logout")).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(logout.headers()["location"], "/login");

    let after = browser.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn five_failures_throttle_the_account() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let email = tenant.email(Role::Manager);

    for attempt in 1..=5 {
        let response = app
            .login(&app.browser(), &email, "wrong password here")
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }

    // Even the right password is refused while throttled.
    let throttled = app.login(&app.browser(), &email, &tenant.password).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (800..=900).contains(&retry_after),
        "retry-after {retry_after}"
    );
    assert!(throttled
        .text()
        .await
        .unwrap()
        .contains("Too many sign-in attempts"));

    // Another account from the same address is refused too: the address has five failures.
    let other = app
        .login(&app.browser(), &tenant.email(Role::Admin), &tenant.password)
        .await;
    assert_eq!(other.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn failures_spread_over_accounts_throttle_the_address() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    for n in 0..5 {
        let response = app
            .login(
                &app.browser(),
                &format!("guess{n}@acme.test"),
                "wrong password here",
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM login_attempts WHERE NOT succeeded")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 5);

    let blocked = app
        .login(
            &app.browser(),
            &tenant.email(Role::Manager),
            &tenant.password,
        )
        .await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn failures_below_the_limit_still_allow_login() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let email = tenant.email(Role::Manager);
    for _ in 0..4 {
        app.login(&app.browser(), &email, "wrong password here")
            .await;
    }
    let ok = app.login(&app.browser(), &email, &tenant.password).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn session_past_absolute_timeout_is_signed_out() {
    let settings = Settings {
        session_absolute_timeout: Duration::from_secs(1),
        ..Settings::default()
    };
    let app = TestApp::spawn_with(settings).await;
    let tenant = app.tenant("acme").await;
    let browser = app.browser();
    app.login(&browser, &tenant.email(Role::Manager), &tenant.password)
        .await;
    assert_eq!(
        browser
            .get(app.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;

    let expired = browser.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn session_row_expiry_follows_idle_timeout() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let browser = app.browser();
    app.login(&browser, &tenant.email(Role::Manager), &tenant.password)
        .await;

    let minutes: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(expiry_date) - now())::float8 / 60 FROM sessions",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        (29.0..=30.1).contains(&minutes),
        "session expires in {minutes} minutes"
    );
}

#[tokio::test]
async fn parallel_guesses_are_still_throttled() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let email = tenant.email(Role::Manager);

    let attempts = (0..10).map(|_| {
        let app = &app;
        let email = email.clone();
        async move {
            app.login(&app.browser(), &email, "wrong password here")
                .await
                .status()
        }
    });
    let statuses = futures::future::join_all(attempts).await;

    let rejected = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(rejected >= 1, "{statuses:?}");
    assert!(
        rejected <= 5,
        "more than 5 guesses were checked: {statuses:?}"
    );
    assert_eq!(rejected + throttled, 10, "{statuses:?}");

    let checked: i64 = sqlx::query_scalar("SELECT count(*) FROM login_attempts")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        checked as usize, rejected,
        "only checked guesses are recorded"
    );
}

#[tokio::test]
async fn cross_site_login_form_is_rejected() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;

    // No cookie at all: another site posting its own credentials into the victim's browser.
    let response = reqwest::Client::new()
        .post(app.url("/sfn/login"))
        .header("origin", "https://evil.example")
        .form(&[
            ("email", tenant.email(Role::Manager).as_str()),
            ("password", tenant.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&response).is_none());
}

#[tokio::test]
async fn oversized_server_function_body_is_rejected() {
    let app = TestApp::spawn().await;
    let huge = "x".repeat(300 * 1024);
    let response = app.login(&app.browser(), &huge, "whatever password").await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn logged_out_session_is_not_revived() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("acme").await;
    let browser = app.browser();
    let login = app
        .login(&browser, &tenant.email(Role::Manager), &tenant.password)
        .await;
    let cookie = session_cookie(&login).unwrap();

    browser.post(app.url("/sfn/logout")).send().await.unwrap();

    // Replaying the old cookie afterwards neither authenticates nor recreates the row.
    let replay = reqwest::Client::new()
        .get(app.url("/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    let id = cookie.split_once('=').unwrap().1;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn sign_ins_join_the_audit_trail() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("audited").await;
    let email = tenant.email(backend::accounts::Role::Manager);
    let client = app.browser();
    app.login(&client, &email, "wrong password").await;
    app.login(&client, &email, &tenant.password).await;

    let admin = app
        .token(&tenant.email(backend::accounts::Role::Admin))
        .await;
    let (trail, actions) = app.audit_trail(&admin).await;
    assert_eq!(actions, vec!["auth.login_succeeded", "auth.login_failed"]);
    assert_eq!(trail[0]["actor"], email.as_str());
    assert!(trail[0]["ip"].is_string());
}
