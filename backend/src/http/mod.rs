//! The HTTP edge shared by the REST API and the Leptos server functions.

mod error;
mod extract;

pub use error::{ApiError, ErrorBody};
pub use extract::{
    ApiJson, ClientMeta, CorrelationId, Principal, SESSION_SIGNED_IN_AT, SESSION_USER_ID,
};
