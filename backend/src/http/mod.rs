//! The HTTP edge shared by the REST API and the Leptos server functions.

mod error;
mod extract;

pub use error::{ApiError, ErrorBody};
pub use extract::{
    AdminRole, AnyRole, ApiJson, ApproverRole, Authorized, ClientMeta, CorrelationId, ManagerRole,
    Principal, ReviewerRole, RoleRequirement, SESSION_SIGNED_IN_AT, SESSION_USER_ID,
};
