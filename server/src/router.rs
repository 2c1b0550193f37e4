//! The HTTP application: pages, server functions, REST API, health and metrics.

use std::sync::OnceLock;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware as axum_middleware, Extension, Json, Router};
use backend::sessions::PgSessionStore;
use backend::AppState;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::{api, forms, middleware};

/// State of the page routes: Leptos needs its options, handlers need the app state.
#[derive(Clone, axum::extract::FromRef)]
pub struct WebState {
    /// Leptos site options.
    pub leptos: LeptosOptions,
    /// The application state.
    pub app: AppState,
}

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "siteline_session";

/// Builds the whole router around `state`, serving the site described by `leptos`.
pub fn build(state: AppState, leptos: LeptosOptions) -> Router {
    prometheus();
    let settings = state.settings.clone();
    let sessions = session_layer(&state);
    let pages = pages_router(&state, leptos);

    let api = api::router()
        .layer(DefaultBodyLimit::max(settings.json_body_limit))
        .layer(axum_middleware::from_fn_with_state(
            state.clone(),
            middleware::json_body_limit,
        ));

    // Uploads get the document limit plus room for the multipart framing; the handler counts
    // the file's own bytes against the document limit as they stream in.
    let upload_limit = settings.knowledge.max_document_bytes + 64 * 1024;
    let uploads = api::upload_router()
        .layer(DefaultBodyLimit::max(upload_limit))
        .layer(axum_middleware::from_fn_with_state(
            upload_limit,
            middleware::upload_body_limit,
        ));

    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api.merge(uploads).with_state(state.clone()))
        .merge(pages)
        // The knowledge upload form posts a document, so it shares the API upload's limit.
        .merge(forms::router(upload_limit))
        .layer(axum_middleware::from_fn_with_state(
            state.clone(),
            middleware::csrf,
        ))
        .layer(sessions)
        .layer(Extension(state.clone()))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(axum_middleware::from_fn(middleware::correlation))
        .with_state(state)
}

/// Builds the session layer: PostgreSQL-backed, `HttpOnly`, `SameSite=Strict` cookies that
/// expire after the idle timeout.
fn session_layer(state: &AppState) -> SessionManagerLayer<PgSessionStore> {
    let settings = &state.settings;
    let idle = time::Duration::try_from(settings.session_idle_timeout)
        .unwrap_or(time::Duration::minutes(30));
    SessionManagerLayer::new(PgSessionStore::new(state.pool.clone()))
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(settings.secure_cookies)
        .with_path("/")
        // Saving on every request moves the idle deadline forward with each use.
        .with_always_save(true)
        .with_expiry(Expiry::OnInactivity(idle))
}

/// Returns the page routes, generated once per process and cloned for each router.
///
/// While leptos_server 0.8 generates them, a process-wide flag stops resources from loading,
/// and a resource first polled then never loads. The tests build many routers in one process,
/// so the list is generated once, before any router serves a page.
fn page_routes() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(app::App)).clone()
}

/// Builds the Leptos pages and server functions, with the app state in their context.
fn pages_router(state: &AppState, leptos: LeptosOptions) -> Router<AppState> {
    let web_state = WebState {
        leptos: leptos.clone(),
        app: state.clone(),
    };
    let routes = page_routes();
    let context_state = state.clone();
    Router::new()
        .leptos_routes_with_context(
            &web_state,
            routes,
            move || provide_context(context_state.clone()),
            move || app::shell(leptos.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<WebState, _>(
            app::shell,
        ))
        .with_state(web_state)
        // Server functions read their whole body, so the JSON limit applies to them as well.
        .layer(RequestBodyLimitLayer::new(state.settings.json_body_limit))
}

/// Returns 200 while the process is up (liveness).
async fn healthz() -> &'static str {
    "ok"
}

/// Returns 200 when the database responds and the schema is current (readiness).
async fn readyz(State(state): State<AppState>) -> Response {
    match backend::db::readiness(&state.pool).await {
        Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(reason) => {
            tracing::warn!(reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "not ready", "error": reason})),
            )
                .into_response()
        }
    }
}

/// Prometheus metrics in the text exposition format.
async fn metrics() -> Response {
    let body = prometheus().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Returns the process-wide metrics recorder, installing it on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is already global, in which case that one records.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
