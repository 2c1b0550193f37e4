//! REST routes of the knowledge base that exist so far: the URL guard's verdict.

use axum::Json;
use backend::http::{AdminRole, ApiError, ApiJson, Authorized};
use backend::net::{check_url, Policy, SystemResolver};
use serde::{Deserialize, Serialize};

/// Body of `POST /api/v1/knowledge/url-check`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlCheck {
    /// The URL a knowledge source would be fetched from.
    pub url: String,
}

/// The guard's verdict on a URL.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UrlVerdict {
    /// True when a fetch would be attempted.
    pub allowed: bool,
    /// Stable code of the refusal, e.g. `private_address`; absent when allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence naming the value at fault and the fix; absent when allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Longest URL accepted, in characters.
const MAX_URL_CHARS: usize = 2048;

/// Runs the outbound URL guard on a URL (admins): parsing, scheme, port, name resolution and
/// every resolved address, without fetching anything.
#[utoipa::path(post, path = "/api/v1/knowledge/url-check", request_body = UrlCheck, responses(
    (status = 200, body = UrlVerdict),
    (status = 403, body = backend::http::ErrorBody),
    (status = 422, body = backend::http::ErrorBody),
))]
pub async fn url_check(
    _caller: Authorized<AdminRole>,
    ApiJson(body): ApiJson<UrlCheck>,
) -> Result<Json<UrlVerdict>, ApiError> {
    let url = body.url.trim();
    if url.is_empty() || url.chars().count() > MAX_URL_CHARS {
        return Err(ApiError::Unprocessable {
            message: format!("url must have 1 to {MAX_URL_CHARS} characters"),
            field: Some("url".to_string()),
            value: Some(url.to_string()),
        });
    }
    let verdict = match check_url(url, &Policy::default(), &SystemResolver).await {
        Ok(_) => UrlVerdict {
            allowed: true,
            reason: None,
            message: None,
        },
        Err(refusal) => UrlVerdict {
            allowed: false,
            reason: Some(refusal.reason_code().to_string()),
            message: Some(refusal.to_string()),
        },
    };
    Ok(Json(verdict))
}
