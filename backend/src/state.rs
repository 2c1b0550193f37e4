//! The shared application state handed to every request handler and server function.

use std::sync::Arc;

use sqlx::PgPool;

use crate::settings::Settings;

/// Database pool and settings, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The PostgreSQL pool: system of record, session store and job queue.
    pub pool: PgPool,
    /// Policy numbers in force.
    pub settings: Arc<Settings>,
}

impl AppState {
    /// Builds the state from a connected pool and the settings in force.
    pub fn new(pool: PgPool, settings: Settings) -> Self {
        Self {
            pool,
            settings: Arc::new(settings),
        }
    }
}
