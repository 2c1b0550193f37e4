//! Personal API tokens: printed once at creation, stored only as a SHA-256 hash.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::{load_principal, user_id_by_email, Email, Principal};
use crate::http::ApiError;
use crate::ids::{TenantId, UserId};

/// Prefix that makes a leaked token recognisable to secret scanners.
const TOKEN_PREFIX: &str = "slt_";

/// A token just created: the only moment its plain text exists.
#[derive(Debug)]
pub struct NewToken {
    /// The token row's id.
    pub id: Uuid,
    /// The plain token to hand to the user once.
    pub token: String,
}

/// Creates a personal API token named `name` for the user with `email`.
pub async fn create_token(pool: &PgPool, email: &Email, name: &str) -> Result<NewToken, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid(
            "name",
            name,
            "token name must be 1-100 characters",
        ));
    }
    let user_id = user_id_by_email(pool, email).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no user with email {}; create it first with `server admin create-user`",
            email.as_str()
        ))
    })?;

    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let id = Uuid::now_v7();

    sqlx::query(
        "INSERT INTO api_tokens (id, tenant_id, user_id, name, token_hash)
         SELECT $1, tenant_id, id, $3, $4 FROM users WHERE id = $2",
    )
    .bind(id)
    .bind(user_id)
    .bind(name)
    .bind(token_hash(&token))
    .execute(pool)
    .await?;
    Ok(NewToken { id, token })
}

/// Resolves a bearer token to its user's principal; unknown or revoked tokens give `None`.
pub async fn principal_for_token(
    pool: &PgPool,
    token: &str,
) -> Result<Option<Principal>, ApiError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let owner: Option<(UserId, TenantId)> = sqlx::query_as(
        "UPDATE api_tokens SET last_used_at = now()
         WHERE token_hash = $1 AND revoked_at IS NULL
         RETURNING user_id, tenant_id",
    )
    .bind(token_hash(token))
    .fetch_optional(pool)
    .await?;
    match owner {
        Some((user_id, _)) => load_principal(pool, user_id).await,
        None => Ok(None),
    }
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
