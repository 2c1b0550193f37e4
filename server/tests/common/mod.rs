//! Starts the real application on a random port against a fresh database.

#![allow(dead_code)]

use std::net::SocketAddr;

use backend::accounts::{self, Email, Role};
use backend::settings::Settings;
use backend::testing::fresh_pool;
use backend::AppState;
use reqwest::header::{HeaderMap, HeaderValue, ORIGIN};
use sqlx::PgPool;

/// Returns the site options a test app serves with, listening on `addr`.
pub fn leptos_options(addr: SocketAddr) -> leptos::config::LeptosOptions {
    let web = server::config::WebArgs {
        addr,
        site_root: "target/site".into(),
        secure_cookies: false,
        trusted_origins: vec![],
        session_idle_minutes: 30,
        session_absolute_hours: 12,
        login_max_failures: 5,
        login_window_minutes: 15,
        json_body_limit_kb: 256,
    };
    server::cli::leptos_options(&web)
}

/// A running application and a pool to its database.
pub struct TestApp {
    /// Base URL, e.g. http://127.0.0.1:41234.
    pub base: String,
    /// Pool to the test's own database.
    pub pool: PgPool,
}

/// A tenant created for a test, with one user per role sharing one password.
pub struct TestTenant {
    pub slug: String,
    pub password: String,
}

impl TestTenant {
    /// Returns the email of this tenant's user with `role`.
    pub fn email(&self, role: Role) -> String {
        format!("{}@{}.test", role.as_str(), self.slug)
    }
}

impl TestApp {
    /// Starts the app with default settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(Settings::default()).await
    }

    /// Starts the app with `settings`.
    pub async fn spawn_with(settings: Settings) -> Self {
        Self::spawn_customized(settings, |_, state| state).await
    }

    /// Starts the app with `settings` and the state `customize` returns, such as one with
    /// another embedder; it receives the test database's pool.
    pub async fn spawn_customized(
        settings: Settings,
        customize: impl FnOnce(&sqlx::PgPool, AppState) -> AppState,
    ) -> Self {
        let pool = fresh_pool().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();

        let state = customize(&pool, AppState::new(pool.clone(), settings));
        let app = server::router::build(state, leptos_options(addr));
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });

        Self {
            base: format!("http://{addr}"),
            pool,
        }
    }

    /// Returns the absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates tenant `slug` with a manager, an approver and an admin.
    pub async fn tenant(&self, slug: &str) -> TestTenant {
        let tenant = accounts::create_tenant(&self.pool, slug, &format!("Tenant {slug}"))
            .await
            .unwrap();
        let tenant_data = TestTenant {
            slug: slug.to_string(),
            password: format!("pw-{slug}-correct-horse"),
        };
        for role in Role::ALL {
            let email = Email::parse(&tenant_data.email(role)).unwrap();
            accounts::create_user(
                &self.pool,
                tenant.scope(),
                &email,
                &[role],
                &tenant_data.password,
            )
            .await
            .unwrap();
        }
        tenant_data
    }

    /// Creates a personal API token for the user with `email`.
    pub async fn token(&self, email: &str) -> String {
        let email = Email::parse(email).unwrap();
        accounts::create_token(&self.pool, &email, "test")
            .await
            .unwrap()
            .token
    }

    /// Sends `GET path` with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Sends `POST path` with a bearer token and a JSON body.
    pub async fn post_as(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Reads the audit trail as an admin: the entries, newest first, and their action names.
    pub async fn audit_trail(&self, admin_token: &str) -> (serde_json::Value, Vec<String>) {
        let trail: serde_json::Value = self
            .get_as(admin_token, "/api/v1/audit")
            .await
            .json()
            .await
            .unwrap();
        let actions = trail
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["action"].as_str().unwrap().to_string())
            .collect();
        (trail, actions)
    }

    /// Builds a browser-like client that keeps cookies and sends this site's `Origin`.
    pub fn browser(&self) -> reqwest::Client {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(&self.base).unwrap());
        reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// Signs in through the login server function as a script would; returns the response.
    pub async fn login(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        client
            .post(self.url("/sfn/login"))
            .form(&[("email", email), ("password", password)])
            .send()
            .await
            .unwrap()
    }
}

/// Returns the session cookie (`name=value`) set by `response`, if any.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(server::router::SESSION_COOKIE))
        .and_then(|value| value.split(';').next())
        .map(str::to_string)
}
