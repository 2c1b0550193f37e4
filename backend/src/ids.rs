//! Identifier newtypes. Each is built from outside input only through `parse`, which names the
//! field and the offending value on failure.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::ApiError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Parses the id carried by the request field `field`.
            pub fn parse(field: &str, raw: &str) -> Result<Self, ApiError> {
                parse_uuid(field, raw).map(Self)
            }

            /// Creates a new time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A tenant: one customer organisation.
    TenantId
);
uuid_id!(
    /// A user account.
    UserId
);
uuid_id!(
    /// A conversation session.
    ConversationId
);

/// Parses `raw` as a UUID, or returns 400 naming `field` and the (truncated) value.
pub fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ApiError::invalid(
            field,
            raw,
            format!("{field} must be a UUID such as 0190f1c2-7a3b-7c4d-8e5f-0123456789ab"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_uuid() {
        let id = TenantId::parse("tenant_id", "0190f1c2-7a3b-7c4d-8e5f-0123456789ab").unwrap();
        assert_eq!(id.0.to_string(), "0190f1c2-7a3b-7c4d-8e5f-0123456789ab");
    }

    #[test]
    fn parse_rejects_garbage_naming_field() {
        let error = ConversationId::parse("id", "not-a-uuid").unwrap_err();
        let body = error.body();
        assert_eq!(body.field.as_deref(), Some("id"));
        assert_eq!(body.value.as_deref(), Some("not-a-uuid"));
        assert!(body.error.contains("must be a UUID"), "{}", body.error);
    }
}
