//! Signature checks of `POST /api/v1/webhooks/knowledge`.
//!
//! A sender signs `"{timestamp}.{body}"` with HMAC-SHA256 under a shared secret and sends
//! `X-Siteline-Timestamp` (Unix seconds), `X-Siteline-Delivery` (a unique id) and
//! `X-Siteline-Signature: sha256=<hex>`. Two secrets may be active at once so that a secret can
//! be rotated without a gap. Replays are refused by storing each accepted delivery id.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::http::ApiError;
use crate::providers::Secret;

/// Header carrying the signing time, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-siteline-timestamp";
/// Header carrying the sender's unique delivery id.
pub const DELIVERY_HEADER: &str = "x-siteline-delivery";
/// Header carrying `sha256=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "x-siteline-signature";

type HmacSha256 = Hmac<Sha256>;

/// The signature headers of one request, as received.
#[derive(Debug, Clone, Default)]
pub struct SignedHeaders<'a> {
    /// `X-Siteline-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-Siteline-Delivery`.
    pub delivery_id: Option<&'a str>,
    /// `X-Siteline-Signature`.
    pub signature: Option<&'a str>,
}

/// Returns the `X-Siteline-Signature` value for `body` signed at `timestamp` with `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// Checks a delivery's headers and signature and returns its delivery id. `now` is the
/// server's time in Unix seconds. Errors are 400 for missing or malformed headers and 401 for
/// a signature or timestamp that does not verify.
pub fn verify<'a>(
    headers: &SignedHeaders<'a>,
    body: &[u8],
    secrets: &[Secret],
    tolerance: Duration,
    now: i64,
) -> Result<&'a str, ApiError> {
    if secrets.is_empty() {
        return Err(ApiError::Forbidden(
            "knowledge webhooks are turned off; set KNOWLEDGE_WEBHOOK_SECRETS to accept them"
                .to_string(),
        ));
    }
    let missing = |header: &str| {
        ApiError::invalid(
            header,
            "",
            format!(
                "header {header} is missing; sign the delivery as the API documentation describes"
            ),
        )
    };
    let timestamp_text = headers.timestamp.ok_or_else(|| missing(TIMESTAMP_HEADER))?;
    let delivery_id = headers
        .delivery_id
        .ok_or_else(|| missing(DELIVERY_HEADER))?;
    let signature = headers.signature.ok_or_else(|| missing(SIGNATURE_HEADER))?;

    let timestamp: i64 = timestamp_text.trim().parse().map_err(|_| {
        ApiError::invalid(
            TIMESTAMP_HEADER,
            timestamp_text,
            "the timestamp must be Unix seconds, e.g. 1764892800",
        )
    })?;
    if delivery_id.is_empty()
        || delivery_id.len() > 200
        || delivery_id.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(
            DELIVERY_HEADER,
            delivery_id,
            "the delivery id must be 1 to 200 printable characters",
        ));
    }
    let skew = now.abs_diff(timestamp);
    if skew > tolerance.as_secs() {
        return Err(ApiError::Unauthorized(format!(
            "the delivery's timestamp {timestamp} is {skew} s from the server's clock, more than the {} s allowed; sign it again with the current time",
            tolerance.as_secs()
        )));
    }
    let hex = signature.strip_prefix("sha256=").ok_or_else(|| {
        ApiError::invalid(
            SIGNATURE_HEADER,
            signature,
            "the signature must look like sha256=<64 hex digits>",
        )
    })?;
    let Some(expected) = decode_hex(hex) else {
        return Err(ApiError::invalid(
            SIGNATURE_HEADER,
            signature,
            "the signature must look like sha256=<64 hex digits>",
        ));
    };
    let matches = secrets.iter().any(|secret| {
        let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC accepts any key length");
        mac.update(timestamp_text.trim().as_bytes());
        mac.update(b".");
        mac.update(body);
        // verify_slice compares in constant time.
        mac.verify_slice(&expected).is_ok()
    });
    if !matches {
        return Err(ApiError::Unauthorized(
            "the delivery's signature does not match; sign \"{timestamp}.{body}\" with HMAC-SHA256 under the shared secret".to_string(),
        ));
    }
    Ok(delivery_id)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&hex[index..index + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_892_800;

    fn secrets() -> Vec<Secret> {
        vec![
            Secret::new("current-secret"),
            Secret::new("previous-secret"),
        ]
    }

    fn headers<'a>(timestamp: &'a str, signature: &'a str) -> SignedHeaders<'a> {
        SignedHeaders {
            timestamp: Some(timestamp),
            delivery_id: Some("delivery-1"),
            signature: Some(signature),
        }
    }

    #[test]
    fn signature_of_either_secret_verifies() {
        let body = br#"{"url":"https://example.com"}"#;
        let tolerance = Duration::from_secs(300);
        for secret in ["current-secret", "previous-secret"] {
            let signature = sign(secret, NOW, body);
            let verified = verify(
                &headers("1764892800", &signature),
                body,
                &secrets(),
                tolerance,
                NOW,
            );
            assert_eq!(verified.unwrap(), "delivery-1");
        }
    }

    #[test]
    fn wrong_secret_or_body_is_refused() {
        let body = b"{}";
        let tolerance = Duration::from_secs(300);
        let signature = sign("other", NOW, body);
        let error = verify(
            &headers("1764892800", &signature),
            body,
            &secrets(),
            tolerance,
            NOW,
        )
        .unwrap_err();
        assert_eq!(error.status(), 401);
        let signature = sign("current-secret", NOW, body);
        let error = verify(
            &headers("1764892800", &signature),
            b"{ }",
            &secrets(),
            tolerance,
            NOW,
        )
        .unwrap_err();
        assert_eq!(error.status(), 401);
    }

    #[test]
    fn old_timestamp_is_refused() {
        let body = b"{}";
        let old = NOW - 301;
        let signature = sign("current-secret", old, body);
        let error = verify(
            &headers(&old.to_string(), &signature),
            body,
            &secrets(),
            Duration::from_secs(300),
            NOW,
        )
        .unwrap_err();
        assert_eq!(error.status(), 401);
        assert!(error.to_string().contains("301 s"), "{error}");
    }

    #[test]
    fn malformed_headers_are_invalid() {
        let body = b"{}";
        let tolerance = Duration::from_secs(300);
        let missing = SignedHeaders::default();
        assert_eq!(
            verify(&missing, body, &secrets(), tolerance, NOW)
                .unwrap_err()
                .status(),
            400
        );
        let bad_hex = verify(
            &headers("1764892800", "sha256=zz"),
            body,
            &secrets(),
            tolerance,
            NOW,
        );
        assert_eq!(bad_hex.unwrap_err().status(), 400);
        let bad_time = verify(
            &headers("yesterday", "sha256=00"),
            body,
            &secrets(),
            tolerance,
            NOW,
        );
        assert_eq!(bad_time.unwrap_err().status(), 400);
    }

    #[test]
    fn no_secret_configured_is_forbidden() {
        let error = verify(
            &headers("1764892800", "sha256=00"),
            b"{}",
            &[],
            Duration::from_secs(300),
            NOW,
        )
        .unwrap_err();
        assert_eq!(error.status(), 403);
    }
}
