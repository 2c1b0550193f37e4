//! Sign-in, sign-out and the signed-in user, as server functions.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The signed-in user as the pages see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    /// The user's email.
    pub email: String,
    /// The tenant's display name.
    pub tenant_name: String,
    /// Role names: manager, approver, admin.
    pub roles: Vec<String>,
}

impl CurrentUser {
    /// Checks whether the user has the role named `role`.
    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }

    /// Returns the page a user lands on after sign-in.
    pub fn landing_path(&self) -> &'static str {
        if self.has("manager") {
            "/chat"
        } else {
            "/"
        }
    }
}

/// A user row on the Users page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    /// The user's id.
    pub id: String,
    /// The user's email.
    pub email: String,
    /// Role names.
    pub roles: Vec<String>,
}

/// Signs in with email and password; on success starts a fresh session and redirects.
#[server(prefix = "/sfn", endpoint = "login")]
pub async fn login(email: String, password: String) -> Result<(), ServerFnError> {
    use backend::accounts::{self, LoginError};
    use backend::http::{ApiError, ClientMeta, SESSION_SIGNED_IN_AT, SESSION_USER_ID};

    let state = ssr::state()?;
    let session: tower_sessions::Session = ssr::extract().await?;
    let client: ClientMeta = ssr::extract().await?;

    let principal =
        match accounts::login(&state.pool, &state.settings, &email, &password, &client.ip).await {
            Ok(principal) => principal,
            // The page shows the login error's own sentence, not the API's generic 401 text.
            Err(LoginError::BadCredentials) => {
                ssr::answer_status(http::StatusCode::UNAUTHORIZED, None);
                return Err(ServerFnError::ServerError(
                    LoginError::BadCredentials.to_string(),
                ));
            }
            Err(error) => return Err(ssr::api_error(ApiError::from(error))),
        };

    // A new id at sign-in: a cookie planted or captured before sign-in never becomes a
    // signed-in session.
    session.cycle_id().await.map_err(ssr::internal)?;
    session
        .insert(SESSION_USER_ID, principal.user_id)
        .await
        .map_err(ssr::internal)?;
    session
        .insert(
            SESSION_SIGNED_IN_AT,
            time::OffsetDateTime::now_utc().unix_timestamp(),
        )
        .await
        .map_err(ssr::internal)?;

    leptos_axum::redirect(ssr::current_user(&principal).landing_path());
    Ok(())
}

/// Ends the session and redirects to the sign-in page.
#[server(prefix = "/sfn", endpoint = "logout")]
pub async fn logout() -> Result<(), ServerFnError> {
    let session: tower_sessions::Session = ssr::extract().await?;
    session.flush().await.map_err(ssr::internal)?;
    leptos_axum::redirect("/login");
    Ok(())
}

/// Returns the signed-in user, or `None` for a visitor (a normal result, not an error).
#[server(prefix = "/sfn", endpoint = "me")]
pub async fn signed_in_user() -> Result<Option<CurrentUser>, ServerFnError> {
    use backend::http::{AnyRole, Authorized};

    let caller = ssr::extract_parts::<Authorized<AnyRole>>().await;
    match caller {
        Ok(caller) => Ok(Some(ssr::current_user(caller.principal()))),
        Err(backend::http::ApiError::Unauthenticated) => Ok(None),
        Err(error) => Err(ssr::api_error(error)),
    }
}

/// Lists the users of the caller's tenant; admins only.
#[server(prefix = "/sfn", endpoint = "users")]
pub async fn list_users() -> Result<Vec<UserRow>, ServerFnError> {
    use backend::accounts;
    use backend::http::{AdminRole, Authorized};

    let caller = ssr::extract_parts::<Authorized<AdminRole>>()
        .await
        .map_err(ssr::api_error)?;
    let state = ssr::state()?;
    let users = accounts::list_users(&state.pool, caller.scope())
        .await
        .map_err(ssr::api_error)?;
    Ok(users
        .into_iter()
        .map(|user| UserRow {
            id: user.id.to_string(),
            email: user.email,
            roles: user.roles,
        })
        .collect())
}

/// Glue between server functions and the backend, compiled only on the server.
#[cfg(feature = "ssr")]
pub mod ssr {
    use backend::accounts::Principal;
    use backend::changes::store::Caller;
    use backend::http::{ApiError, Authorized, ClientMeta, CorrelationId, RoleRequirement};
    use backend::AppState;
    use leptos::prelude::*;
    use uuid::Uuid;

    use super::CurrentUser;

    /// A request by a signed-in user with one of `R`'s roles, and what every call needs.
    pub struct Call<R> {
        pub caller: Authorized<R>,
        pub state: AppState,
        pub correlation: CorrelationId,
    }

    impl<R: RoleRequirement> Call<R> {
        /// Checks that the caller is signed in and has one of `R`'s roles.
        pub async fn authorize() -> Result<Self, ServerFnError> {
            let correlation: CorrelationId = extract().await?;
            let caller = extract_parts::<Authorized<R>>().await.map_err(api_error)?;
            let state = state()?;
            Ok(Self {
                caller,
                state,
                correlation,
            })
        }

        /// Returns the caller's tenant id, the scope of every query.
        pub fn tenant(&self) -> Uuid {
            self.caller.scope().tenant_id().0
        }

        /// Reads the client address and user agent for the audit trail.
        pub async fn client(&self) -> Result<ClientMeta, ServerFnError> {
            extract().await
        }

        /// Builds the caller with the client address and user agent for the audit trail.
        pub async fn audit_caller(&self) -> Result<Caller, ServerFnError> {
            let client: ClientMeta = extract().await?;
            Ok(Caller::new(
                self.caller.principal(),
                &client,
                &self.correlation,
            ))
        }

        /// Converts an error for the page with [`page_error`].
        pub fn fail(&self, error: ApiError) -> ServerFnError {
            page_error(error, &self.correlation)
        }
    }

    /// Returns the application state the server placed in context.
    pub fn state() -> Result<AppState, ServerFnError> {
        use_context::<AppState>()
            .ok_or_else(|| ServerFnError::ServerError("application state missing".into()))
    }

    /// Runs an axum extractor on the current request.
    pub async fn extract<T>() -> Result<T, ServerFnError>
    where
        T: axum::extract::FromRequestParts<()>,
        T::Rejection: std::fmt::Debug,
    {
        leptos_axum::extract::<T>()
            .await
            .map_err(ServerFnError::from)
    }

    /// Runs an extractor whose rejection is an `ApiError`, such as `Authorized`, the same one
    /// the REST API uses.
    pub async fn extract_parts<T>() -> Result<T, ApiError>
    where
        T: axum::extract::FromRequestParts<(), Rejection = ApiError>,
    {
        let Some(mut parts) = use_context::<http::request::Parts>() else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "request parts missing from context"
            )));
        };
        T::from_request_parts(&mut parts, &()).await
    }

    /// Converts a backend error to a server-function error, setting the HTTP status.
    pub fn api_error(error: ApiError) -> ServerFnError {
        if let ApiError::Internal(cause) = &error {
            tracing::error!(error = ?cause, "server function failed");
        }
        let retry = match &error {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        answer_status(error.status(), retry);
        ServerFnError::ServerError(error.body().error)
    }

    /// Converts a backend error like [`api_error`], but an internal error names the correlation
    /// id to quote, because a person on the page cannot see the `X-Request-Id` header.
    pub fn page_error(error: ApiError, correlation: &CorrelationId) -> ServerFnError {
        let internal = matches!(error, ApiError::Internal(_));
        let converted = api_error(error);
        if !internal {
            return converted;
        }
        ServerFnError::ServerError(format!(
            "internal error; try again, and if it fails again quote correlation id {} when \
             reporting it",
            correlation.0
        ))
    }

    /// Maximum length of a rejected value quoted back in a message, in characters.
    const VALUE_EXCERPT_CHARS: usize = 64;

    /// Builds a 400 whose sentence names the field and the value (at most
    /// [`VALUE_EXCERPT_CHARS`] characters of it), since pages show only the sentence.
    pub fn invalid_value(field: &str, value: &str, fix: &str) -> ApiError {
        let mut excerpt: String = value.chars().take(VALUE_EXCERPT_CHARS).collect();
        if value.chars().count() > VALUE_EXCERPT_CHARS {
            excerpt.push('…');
        }
        let message = format!("{field} \"{excerpt}\" is invalid: {fix}");
        ApiError::invalid(field, value, message)
    }

    /// Logs an unexpected failure and hides its details from the client.
    pub fn internal(error: impl std::fmt::Debug) -> ServerFnError {
        tracing::error!(error = ?error, "server function failed");
        ServerFnError::ServerError(
            "internal error; quote the X-Request-Id of this response when reporting it".into(),
        )
    }

    /// Sets `Retry-After` when given, and the response status for calls made by script. A plain
    /// form post keeps the redirect status that carries the error back to the page.
    pub fn answer_status(status: http::StatusCode, retry_after_secs: Option<u64>) {
        let Some(parts) = use_context::<http::request::Parts>() else {
            return;
        };
        let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
            return;
        };
        if let Some(secs) = retry_after_secs {
            if let Ok(value) = http::HeaderValue::from_str(&secs.to_string()) {
                response.insert_header(http::header::RETRY_AFTER, value);
            }
        }
        let accepts_html = parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.contains("text/html"));
        if !accepts_html {
            response.set_status(status);
        }
    }

    /// Builds the page-facing view of a principal.
    pub fn current_user(principal: &Principal) -> CurrentUser {
        CurrentUser {
            email: principal.email.clone(),
            tenant_name: principal.tenant_name.clone(),
            roles: principal
                .roles
                .iter()
                .map(|role| role.as_str().to_string())
                .collect(),
        }
    }
}
