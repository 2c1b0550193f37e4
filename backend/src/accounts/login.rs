//! Sign-in with password, throttled per account and per client address.

use std::sync::LazyLock;

use sqlx::PgPool;

use super::{load_principal, password, Email, Principal};
use crate::http::ApiError;
use crate::ids::UserId;
use crate::settings::Settings;

/// A hash of a random password, verified when the email is unknown so that a wrong email takes
/// as long as a wrong password and timing does not reveal which accounts exist.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| password::hash_password(&password::generate_password()).unwrap_or_default());

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email, wrong password or disabled account; deliberately one message.
    #[error("Email or password is incorrect.")]
    BadCredentials,
    /// Too many recent failures for this account or this address.
    #[error("Too many failed sign-in attempts. Try again in {} minutes.", retry_after_secs.div_ceil(60))]
    Throttled { retry_after_secs: u64 },
    /// A storage failure.
    #[error(transparent)]
    Internal(#[from] ApiError),
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::BadCredentials => ApiError::Unauthenticated,
            LoginError::Throttled { retry_after_secs } => ApiError::TooManyRequests {
                message: error.to_string(),
                retry_after_secs,
            },
            LoginError::Internal(inner) => inner,
        }
    }
}

/// Checks an email and password from client address `ip` and returns the signed-in principal.
///
/// Refuses, before checking the password, when the account or the address already has
/// `login_max_failures` failures inside `login_window`. Every attempt is recorded.
pub async fn login(
    pool: &PgPool,
    settings: &Settings,
    raw_email: &str,
    password: &str,
    ip: &str,
) -> Result<Principal, LoginError> {
    // An unparseable email is still counted against the address, under its raw text.
    let email_key = Email::parse(raw_email)
        .map(|email| email.as_str().to_string())
        .unwrap_or_else(|_| raw_email.trim().to_lowercase());

    let window_secs = settings.login_window.as_secs() as f64;
    let wait = retry_after(
        pool,
        &email_key,
        ip,
        settings.login_max_failures,
        window_secs,
    )
    .await?;
    if let Some(retry_after_secs) = wait {
        tracing::warn!(ip, "sign-in throttled");
        return Err(LoginError::Throttled { retry_after_secs });
    }

    let row: Option<(UserId, String)> = sqlx::query_as(
        "SELECT id, password_hash FROM users WHERE email = $1 AND disabled_at IS NULL",
    )
    .bind(&email_key)
    .fetch_optional(pool)
    .await
    .map_err(ApiError::from)?;

    // Argon2 is deliberately slow, so it runs off the async threads.
    let candidate = password.to_string();
    let (user_id, stored) = match &row {
        Some((id, hash)) => (Some(*id), hash.clone()),
        None => (None, DUMMY_HASH.clone()),
    };
    let matches =
        tokio::task::spawn_blocking(move || password::verify_password(&candidate, &stored))
            .await
            .map_err(|error| ApiError::Internal(error.into()))?;
    let succeeded = matches && user_id.is_some();

    sqlx::query("INSERT INTO login_attempts (email, ip, succeeded) VALUES ($1, $2, $3)")
        .bind(&email_key)
        .bind(ip)
        .bind(succeeded)
        .execute(pool)
        .await
        .map_err(ApiError::from)?;

    let Some(user_id) = user_id.filter(|_| succeeded) else {
        tracing::info!(ip, "sign-in failed");
        return Err(LoginError::BadCredentials);
    };
    let principal = load_principal(pool, user_id)
        .await?
        .ok_or(LoginError::BadCredentials)?;
    tracing::info!(user_id = %principal.user_id, tenant_id = %principal.tenant_id, "signed in");
    Ok(principal)
}

/// Seconds until the oldest counted failure leaves the window, when the account or the address
/// has reached `max_failures`; `None` when another attempt is allowed.
async fn retry_after(
    pool: &PgPool,
    email: &str,
    ip: &str,
    max_failures: u32,
    window_secs: f64,
) -> Result<Option<u64>, ApiError> {
    // For each key, the failures inside the window; the `max_failures`-th newest failure is the
    // one whose expiry re-opens the door.
    let wait: Option<f64> = sqlx::query_scalar(
        "WITH recent AS (
             SELECT 'email' AS key_kind, attempted_at FROM login_attempts
              WHERE email = $1 AND NOT succeeded
                AND attempted_at > now() - make_interval(secs => $4)
             UNION ALL
             SELECT 'ip', attempted_at FROM login_attempts
              WHERE ip = $2 AND NOT succeeded
                AND attempted_at > now() - make_interval(secs => $4)
         ), ranked AS (
             SELECT key_kind, attempted_at,
                    row_number() OVER (PARTITION BY key_kind ORDER BY attempted_at DESC) AS n
               FROM recent
         )
         SELECT max(extract(epoch FROM attempted_at + make_interval(secs => $4) - now()))::float8
           FROM ranked WHERE n = $3",
    )
    .bind(email)
    .bind(ip)
    .bind(i64::from(max_failures))
    .bind(window_secs)
    .fetch_one(pool)
    .await?;
    Ok(wait.map(|secs| secs.ceil().max(1.0) as u64))
}
