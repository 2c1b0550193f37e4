//! Extractors that run at the request edge: who is calling, the JSON body, client metadata.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::ops::Deref;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use tower_sessions::Session;

use crate::accounts::{self, Principal as AccountPrincipal, Role};
use crate::http::ApiError;
use crate::ids::UserId;
use crate::AppState;

pub use crate::accounts::Principal;

/// Session key holding the signed-in user's id.
pub const SESSION_USER_ID: &str = "user_id";
/// Session key holding the sign-in time (Unix seconds), for the absolute timeout.
pub const SESSION_SIGNED_IN_AT: &str = "signed_in_at";

/// The correlation id of the current request, placed in the extensions by the server's
/// middleware and carried into logs and jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CorrelationId {
    type Rejection = std::convert::Infallible;

    /// Takes the id the correlation middleware stored; a fresh one when it did not run.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<CorrelationId>()
            .cloned()
            .unwrap_or_else(|| CorrelationId(uuid::Uuid::now_v7().to_string())))
    }
}

/// Client address and user agent, recorded with logins and decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMeta {
    /// The peer address, or "unknown" when the server was not given connection info.
    pub ip: String,
    /// The `User-Agent` header, cut to 300 characters.
    pub user_agent: String,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // TODO: behind a reverse proxy every client shares the proxy's address; trusting
        // X-Forwarded-For needs a configured list of proxy addresses.
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        Ok(Self { ip, user_agent })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AccountPrincipal {
    type Rejection = ApiError;

    /// Authenticates by bearer token when an `Authorization` header is present, otherwise by
    /// the session cookie. Every REST route and server function obtains its caller here.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        if let Some(principal) = parts.extensions.get::<AccountPrincipal>() {
            return Ok(principal.clone());
        }
        let state = parts
            .extensions
            .get::<AppState>()
            .cloned()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("AppState extension missing")))?;

        let principal = match parts.headers.get(AUTHORIZATION) {
            Some(header) => {
                let token = header
                    .to_str()
                    .ok()
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .ok_or(ApiError::Unauthenticated)?;
                accounts::principal_for_token(&state.pool, token.trim()).await?
            }
            None => principal_from_session(parts, &state).await?,
        };

        let principal = principal.ok_or(ApiError::Unauthenticated)?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// The roles a route admits; implemented by the marker types below.
pub trait RoleRequirement {
    /// The caller must hold at least one of these.
    const ROLES: &'static [Role];
}

/// Admits any signed-in member of the tenant.
pub struct AnyRole;
/// Admits facility managers.
pub struct ManagerRole;
/// Admits approvers.
pub struct ApproverRole;
/// Admits admins.
pub struct AdminRole;
/// Admits the people who review knowledge documents: approvers and admins.
pub struct ReviewerRole;

impl RoleRequirement for AnyRole {
    const ROLES: &'static [Role] = &Role::ALL;
}
impl RoleRequirement for ManagerRole {
    const ROLES: &'static [Role] = &[Role::Manager];
}
impl RoleRequirement for ApproverRole {
    const ROLES: &'static [Role] = &[Role::Approver];
}
impl RoleRequirement for AdminRole {
    const ROLES: &'static [Role] = &[Role::Admin];
}
impl RoleRequirement for ReviewerRole {
    const ROLES: &'static [Role] = &[Role::Approver, Role::Admin];
}

/// The authenticated caller, checked to hold one of `R::ROLES`: the one extractor every REST
/// route and server function uses. Missing credentials give 401, a missing role 403.
pub struct Authorized<R>(AccountPrincipal, PhantomData<fn() -> R>);

impl<R> Authorized<R> {
    /// The caller.
    pub fn principal(&self) -> &AccountPrincipal {
        &self.0
    }
}

impl<R> Deref for Authorized<R> {
    type Target = AccountPrincipal;

    fn deref(&self) -> &AccountPrincipal {
        &self.0
    }
}

impl<S: Send + Sync, R: RoleRequirement> FromRequestParts<S> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let principal = AccountPrincipal::from_request_parts(parts, state).await?;
        principal.require_any(R::ROLES)?;
        Ok(Self(principal, PhantomData))
    }
}

/// Loads the signed-in user of the request's session, ending sessions past the absolute timeout.
async fn principal_from_session(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<AccountPrincipal>, ApiError> {
    let Some(session) = parts.extensions.get::<Session>().cloned() else {
        return Ok(None);
    };
    let user_id: Option<UserId> = session
        .get(SESSION_USER_ID)
        .await
        .map_err(|error| ApiError::Internal(error.into()))?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };

    let signed_in_at: i64 = session
        .get(SESSION_SIGNED_IN_AT)
        .await
        .map_err(|error| ApiError::Internal(error.into()))?
        .unwrap_or(0);
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - signed_in_at;
    if age < 0 || age as u64 > state.settings.session_absolute_timeout.as_secs() {
        tracing::info!(user_id = %user_id, "session past its absolute timeout; signing out");
        session
            .flush()
            .await
            .map_err(|error| ApiError::Internal(error.into()))?;
        return Ok(None);
    }

    accounts::load_principal(&state.pool, user_id).await
}

/// A JSON request body whose failures respond in the API's error shape: 413 over the size limit,
/// 400 for malformed JSON or wrong types (naming the field when serde reports one).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
    use axum::extract::rejection::JsonRejection;

    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge(
            "request body is larger than this route accepts; send a smaller body".to_string(),
        );
    }
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            // axum reports "Failed to deserialize ...: <path>: <reason>"; the path names the field.
            let detail = text
                .split_once("target type: ")
                .map_or(text.as_str(), |(_, rest)| rest);
            let field = detail
                .split_once(": ")
                .map(|(path, _)| path)
                .filter(|path| !path.contains(' '));
            ApiError::Invalid {
                message: format!("invalid JSON body: {detail}"),
                field: field.map(str::to_string),
                value: None,
            }
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::Invalid {
            message: "send the body as JSON with Content-Type: application/json".to_string(),
            field: None,
            value: None,
        },
        _ => ApiError::Invalid {
            message: format!("malformed JSON body: {text}"),
            field: None,
            value: None,
        },
    }
}
