//! Tower middleware: correlation ids, request metrics, CSRF and body-size checks.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use backend::http::{ApiError, CorrelationId};
use backend::security::{csrf_violation, valid_request_id};
use backend::AppState;
use tracing::Instrument;
use uuid::Uuid;

/// Header carrying the correlation id in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// Adopts a valid incoming `X-Request-Id` or makes a UUIDv7, runs the request inside a span
/// carrying it, records metrics, and echoes the id in the response.
pub async fn correlation(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| valid_request_id(value))
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    request.extensions_mut().insert(CorrelationId(id.clone()));

    let route = route_label(request.uri().path());
    let method = method_label(request.method());
    let span = tracing::info_span!(
        "request",
        correlation_id = %id,
        method = %method,
        path = %request.uri().path(),
    );

    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();

    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = elapsed.as_millis() as u64,
            "request finished"
        );
    });
    metrics::counter!(
        "http_requests_total",
        "method" => method,
        "route" => route.clone(),
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());

    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Rejects cookie-authenticated writes, and any server-function call, from another origin
/// (see `backend::security`).
pub async fn csrf(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let server_function = request.uri().path().starts_with("/sfn/");
    let verdict = csrf_violation(
        request.method(),
        request.headers(),
        &state.settings.trusted_origins,
        server_function,
    );
    match verdict {
        Some(reason) => {
            tracing::warn!(reason, "request rejected by the CSRF check");
            ApiError::Forbidden(reason).into_response()
        }
        None => next.run(request).await,
    }
}

/// Returns the body length a request declares in `Content-Length`, when it is a valid number.
pub fn declared_length(headers: &header::HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok())
}

/// Returns 413 in the API's error shape when `Content-Length` exceeds the JSON limit, before
/// the body is read. Bodies without a length are cut by axum's body limit instead.
pub async fn json_body_limit(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.settings.json_body_limit;
    match declared_length(request.headers()) {
        Some(length) if length > limit => ApiError::TooLarge(format!(
            "request body is {length} bytes, over the limit of {limit} bytes; send a smaller body"
        ))
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Returns 413 when an upload's `Content-Length` exceeds `limit`, before the body is read.
pub async fn upload_body_limit(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    match declared_length(request.headers()) {
        Some(length) if length > limit => ApiError::TooLarge(format!(
            "upload is {length} bytes, over the limit of {limit} bytes; split the document or raise KNOWLEDGE_MAX_DOCUMENT_BYTES"
        ))
        .into_response(),
        _ => next.run(request).await,
    }
}

/// API resources named in metric labels; any other path under `/api/v1` counts as "other".
const API_RESOURCES: &[&str] = &["me", "openapi.json", "users", "conversations"];

/// Builds a coarse label for metrics from a fixed set: the API resource, or the kind of path.
/// Labels taken from raw paths would let any client create new time series without limit.
fn route_label(path: &str) -> String {
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some("api"), Some("v1"), Some(resource)) if API_RESOURCES.contains(&resource) => {
            format!("/api/v1/{resource}")
        }
        (Some("api"), _, _) => "/api/other".to_string(),
        (Some("sfn"), _, _) => "/sfn".to_string(),
        (Some("pkg"), _, _) => "/pkg".to_string(),
        (Some(first @ ("healthz" | "readyz" | "metrics")), _, _) => format!("/{first}"),
        _ => "page".to_string(),
    }
}

/// Builds the method label from a fixed set, for the same reason as `route_label`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;

    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn route_labels_are_bounded() {
        assert_eq!(
            route_label("/api/v1/conversations/0190f1c2"),
            "/api/v1/conversations"
        );
        assert_eq!(route_label("/sfn/login"), "/sfn");
        assert_eq!(route_label("/readyz"), "/readyz");
        assert_eq!(route_label("/chat"), "page");
        assert_eq!(route_label("/"), "page");
    }
}
