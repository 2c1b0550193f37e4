//! Password hashing with argon2id.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::distr::{Alphanumeric, SampleString};

use crate::http::ApiError;

/// Shortest password accepted for a new account.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Hashes `password` with argon2id and a random salt into a PHC string.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(
            "password",
            "(hidden)",
            format!("password must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("argon2 hashing failed: {error}")))
}

/// Checks `password` against a stored PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Generates a random 20-character alphanumeric password (about 119 bits).
pub fn generate_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
    }

    #[test]
    fn short_password_is_rejected() {
        let error = hash_password("short").unwrap_err();
        assert_eq!(error.body().field.as_deref(), Some("password"));
    }

    #[test]
    fn malformed_hash_never_matches() {
        assert!(!verify_password("anything at all", "not a phc string"));
    }

    #[test]
    fn generated_passwords_differ() {
        let first = generate_password();
        assert_eq!(first.len(), 20);
        assert_ne!(first, generate_password());
    }
}
