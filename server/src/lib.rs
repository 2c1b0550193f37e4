//! Wiring for Siteline's server: configuration, the HTTP router and its layers, background
//! workers and the operator CLI. Business rules live in the `backend` crate.

// The Knowledge page's view types are deep enough to pass the default limit of 128 when the
// server computes their layouts.
#![recursion_limit = "256"]

pub mod api;
pub mod cli;
pub mod config;
pub mod dead_letter_ops;
pub mod demo_knowledge;
pub mod forms;
pub mod middleware;
pub mod ops;
pub mod router;
pub mod telemetry;
pub mod workers;
