//! Siteline's business rules and their storage, testable alone against PostgreSQL.
//!
//! Modules follow the product's domains. `http` is the thin layer shared by the REST API and the
//! Leptos server functions: the error shape, the authenticated-principal extractor and the
//! request-edge parsers.

pub mod accounts;
pub mod audit;
pub mod changes;
pub mod conversations;
pub mod db;
pub mod facility;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod knowledge;
pub mod net;
pub mod notifications;
pub mod providers;
pub mod recommendations;
pub mod security;
pub mod sessions;
pub mod settings;
pub mod state;
pub mod testing;

pub use state::AppState;
