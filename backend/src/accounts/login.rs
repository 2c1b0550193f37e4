//! Sign-in with password, throttled per account and per client address.

use std::sync::LazyLock;

use sqlx::{PgConnection, PgPool};
use tokio::sync::Semaphore;

use super::{load_principal, password, Email, Principal};
use crate::http::ApiError;
use crate::ids::UserId;
use crate::settings::Settings;

/// A hash of a random password, verified when the email is unknown so that a wrong email takes
/// as long as a wrong password and timing does not reveal which accounts exist.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| password::hash_password(&password::generate_password()).unwrap_or_default());

/// Concurrent argon2 verifications per process. Each takes about 19 MiB and a core for tens of
/// milliseconds, so a burst of sign-ins queues here instead of exhausting memory.
static ARGON2_PERMITS: Semaphore = Semaphore::const_new(4);

/// Maximum password length checked. Anything longer fails without hashing, so huge inputs cost nothing.
const MAX_PASSWORD_CHARS: usize = 1024;

/// Reason a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email, wrong password or disabled account; deliberately one message.
    #[error("Email or password is incorrect.")]
    BadCredentials,
    /// Too many recent failures for this account or this address.
    #[error("Too many sign-in attempts. Try again in {} minute(s).", retry_after_secs.div_ceil(60))]
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
/// `login_max_failures` failures inside `login_window`. Every attempt is recorded. The check and
/// the record happen under transaction-scoped advisory locks on the account and the address, so
/// parallel guesses cannot all pass the check before any is counted. While one attempt for an
/// account or address runs, the others are rejected as throttled with a one-second wait.
pub async fn login(
    pool: &PgPool,
    settings: &Settings,
    raw_email: &str,
    password: &str,
    ip: &str,
) -> Result<Principal, LoginError> {
    // An unparseable email is still counted against the address, under its (capped) raw text.
    let email_key = Email::parse(raw_email)
        .map(|email| email.as_str().to_string())
        .unwrap_or_else(|_| raw_email.trim().to_lowercase().chars().take(254).collect());

    let mut tx = pool.begin().await.map_err(ApiError::from)?;
    // Two key spaces (1: account, 2: address) keep an email and an address from sharing a lock.
    // Trying instead of waiting means a flood of parallel guesses cannot park pooled connections
    // on the lock. The losers get a 429 asking them to retry in a second.
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(1, hashtext($1))
                AND pg_try_advisory_xact_lock(2, hashtext($2))",
    )
    .bind(&email_key)
    .bind(ip)
    .fetch_one(&mut *tx)
    .await
    .map_err(ApiError::from)?;
    if !locked {
        tracing::warn!(
            ip,
            "sign-in rejected: another attempt for this account or address is running"
        );
        return Err(LoginError::Throttled {
            retry_after_secs: 1,
        });
    }

    let window_secs = settings.login_window.as_secs() as f64;
    let wait = retry_after(
        &mut tx,
        &email_key,
        ip,
        settings.login_max_failures,
        window_secs,
    )
    .await?;
    if let Some(retry_after_secs) = wait {
        tracing::warn!(ip, "sign-in rejected: too many recent failures");
        return Err(LoginError::Throttled { retry_after_secs });
    }

    let row: Option<(UserId, uuid::Uuid, String)> = sqlx::query_as(
        "SELECT id, tenant_id, password_hash FROM users WHERE email = $1 AND disabled_at IS NULL",
    )
    .bind(&email_key)
    .fetch_optional(&mut *tx)
    .await
    .map_err(ApiError::from)?;
    let user_id = row.as_ref().map(|(id, _, _)| *id);
    let tenant_id = row.as_ref().map(|(_, tenant, _)| *tenant);
    let stored = row.map_or_else(|| DUMMY_HASH.clone(), |(_, _, hash)| hash);
    let matches = verify(password, stored).await?;
    let succeeded = matches && user_id.is_some();

    sqlx::query("INSERT INTO login_attempts (email, ip, succeeded) VALUES ($1, $2, $3)")
        .bind(&email_key)
        .bind(ip)
        .bind(succeeded)
        .execute(&mut *tx)
        .await
        .map_err(ApiError::from)?;
    // Sign-ins to a known account join its tenant's audit trail; unknown emails have no tenant.
    if let (Some(tenant_id), Some(user_id)) = (tenant_id, user_id) {
        let action = if succeeded {
            "auth.login_succeeded"
        } else {
            "auth.login_failed"
        };
        let event = crate::audit::AuditEvent::new(
            tenant_id,
            crate::audit::Actor::User {
                id: user_id.0,
                email: email_key.clone(),
            },
            action,
            "user",
            user_id.0.to_string(),
            serde_json::json!({}),
        )
        .client(Some(ip.to_string()), None, None);
        crate::audit::record(&mut tx, &event)
            .await
            .map_err(ApiError::from)?;
    }
    tx.commit().await.map_err(ApiError::from)?;

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

/// Verifies `password` against `stored` off the async threads, a few at a time.
async fn verify(password: &str, stored: String) -> Result<bool, ApiError> {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Ok(false);
    }
    let _permit = ARGON2_PERMITS
        .acquire()
        .await
        .map_err(|error| ApiError::Internal(error.into()))?;
    let candidate = password.to_string();
    tokio::task::spawn_blocking(move || password::verify_password(&candidate, &stored))
        .await
        .map_err(|error| ApiError::Internal(error.into()))
}

/// Deletes login attempts older than `age`; they no longer count towards any window.
pub async fn prune_login_attempts(
    pool: &PgPool,
    age: std::time::Duration,
) -> Result<u64, ApiError> {
    let deleted = sqlx::query(
        "DELETE FROM login_attempts WHERE attempted_at < now() - make_interval(secs => $1)",
    )
    .bind(age.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}

/// Seconds until the oldest counted failure leaves the window, when the account or the address
/// has reached `max_failures`; `None` when another attempt is allowed.
async fn retry_after(
    connection: &mut PgConnection,
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
    .fetch_one(connection)
    .await?;
    Ok(wait.map(|secs| secs.ceil().max(1.0) as u64))
}
