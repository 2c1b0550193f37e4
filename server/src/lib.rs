//! Wiring for Siteline's server: configuration, the HTTP router and its layers, background
//! workers and the operator CLI. Business rules live in the `backend` crate.

pub mod api;
pub mod cli;
pub mod config;
pub mod dead_letter_ops;
pub mod middleware;
pub mod ops;
pub mod router;
pub mod telemetry;
pub mod workers;
