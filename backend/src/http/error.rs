//! The one error type that every REST route and server function returns.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Maximum length, in characters, of an offending value echoed back in an error.
const VALUE_EXCERPT_CHARS: usize = 64;

/// The JSON error shape: a plain sentence, and the field and value at fault when there is one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A sentence on the failure and what to do about it.
    pub error: String,
    /// The request field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The offending value, truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The id of the existing resource a 409 collided with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
}

/// A request failure. Each variant's doc names the status it returns; internal causes are
/// logged and never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the input cannot be parsed.
    #[error("{message}")]
    Invalid {
        message: String,
        field: Option<String>,
        value: Option<String>,
    },
    /// 401: no valid session or token.
    #[error("sign in first, or send Authorization: Bearer <personal token>")]
    Unauthenticated,
    /// 401: credentials other than a session or token (such as a webhook signature) failed.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: signed in, but the role or the request's origin does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown, or owned by another tenant (the two are indistinguishable on purpose).
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        message: String,
        existing_id: Option<String>,
    },
    /// 413: the body is larger than the route accepts.
    #[error("{0}")]
    TooLarge(String),
    /// 422: well-formed input that fails validation.
    #[error("{message}")]
    Unprocessable {
        message: String,
        field: Option<String>,
        value: Option<String>,
    },
    /// 429: too many attempts; retry after the given number of seconds.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// 500: a failure of ours; the cause is logged, the client sees a generic sentence.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// Builds a 400 naming the field and the value at fault.
    pub fn invalid(field: &str, value: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            field: Some(field.to_string()),
            value: Some(excerpt(value)),
        }
    }

    /// Builds a 422 naming the field and the value at fault.
    pub fn unprocessable(field: &str, value: &str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            message: message.into(),
            field: Some(field.to_string()),
            value: Some(excerpt(value)),
        }
    }

    /// The HTTP status this error returns.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthenticated | Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Builds the JSON body sent to the client.
    pub fn body(&self) -> ErrorBody {
        let (field, value, existing_id) = match self {
            Self::Invalid { field, value, .. } | Self::Unprocessable { field, value, .. } => {
                (field.clone(), value.clone(), None)
            }
            Self::Conflict { existing_id, .. } => (None, None, existing_id.clone()),
            _ => (None, None, None),
        };
        let error = match self {
            Self::Internal(_) => {
                "internal error; quote the X-Request-Id of this response when reporting it"
                    .to_string()
            }
            other => other.to_string(),
        };
        ErrorBody {
            error,
            field,
            value,
            existing_id,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(error = ?cause, "request failed");
        }
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Self::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Cuts `value` to a short excerpt on a character boundary.
fn excerpt(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(VALUE_EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_truncates_long_values() {
        let long = "é".repeat(100);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), VALUE_EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn internal_error_hides_cause() {
        let error = ApiError::Internal(anyhow::anyhow!("password=hunter2 leaked"));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!error.body().error.contains("hunter2"));
    }

    #[test]
    fn too_many_requests_sets_retry_after() {
        let response = ApiError::TooManyRequests {
            message: "slow down".into(),
            retry_after_secs: 42,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
    }
}
