//! The shared application state handed to every request handler and server function.

use std::sync::Arc;

use sqlx::PgPool;

use crate::knowledge::embed::{Embedder, EmbeddingSettings};
use crate::knowledge::LazyEmbedder;
use crate::providers::Gateway;
use crate::settings::Settings;

/// Database pool, settings and model providers, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The PostgreSQL pool: system of record, session store and job queue.
    pub pool: PgPool,
    /// Policy numbers in force.
    pub settings: Arc<Settings>,
    /// The model provider chain with its breakers, limits and call records.
    pub providers: Arc<Gateway>,
    /// The sentence-embedding model for knowledge search and ingestion.
    pub embedder: Arc<dyn Embedder>,
}

impl AppState {
    /// Builds the state from a connected pool and the settings in force, with an offline-only
    /// provider chain; [`AppState::with_providers`] replaces it.
    pub fn new(pool: PgPool, settings: Settings) -> Self {
        Self {
            providers: Arc::new(Gateway::offline_only(pool.clone())),
            embedder: Arc::new(LazyEmbedder::local(EmbeddingSettings::default())),
            pool,
            settings: Arc::new(settings),
        }
    }

    /// Replaces the embedder, such as one built from the environment at start-up.
    pub fn with_embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.embedder = embedder;
        self
    }

    /// Replaces the provider chain, such as one built from the environment at start-up.
    pub fn with_providers(mut self, providers: Arc<Gateway>) -> Self {
        self.providers = providers;
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.settings)
            .field("providers", &self.providers)
            .field("embedding_model", &self.embedder.model_id())
            .finish_non_exhaustive()
    }
}
