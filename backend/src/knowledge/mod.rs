//! Knowledge base: sources, the ingestion pipeline, embeddings, hybrid search and the two-person
//! publication of documents that recommendations cite.

pub mod chunk;
pub mod clean;
pub mod embed;
pub mod extract;
pub mod pipeline;
pub mod review;
pub mod search;
pub mod settings;
pub mod store;
pub mod webhook;

use serde::{Deserialize, Serialize};

pub use settings::KnowledgeSettings;

/// How much a source is trusted; search and consensus weigh citations by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Authority {
    /// Law, regulation or an official standard.
    Official,
    /// A recognised industry body or the manufacturer.
    High,
    /// A reputable secondary source.
    Medium,
    /// Anything else.
    Low,
}

impl Authority {
    /// Returns the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Official => "official",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }

    /// Parses a stored or submitted name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "official" => Some(Self::Official),
            "high" => Some(Self::High),
            "medium" => Some(Self::Medium),
            "low" => Some(Self::Low),
            _ => None,
        }
    }

    /// Returns the weight in [0, 1] given to a source of this authority.
    pub fn weight(self) -> f64 {
        match self {
            Self::Official => 1.0,
            Self::High => 0.8,
            Self::Medium => 0.6,
            Self::Low => 0.3,
        }
    }
}

/// A pipeline stage, in the order a document passes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Download a URL source through the outbound guard.
    Fetch,
    /// Turn the bytes into sections of text.
    Extract,
    /// Normalise the text and flag hidden or injection-like content.
    Sanitize,
    /// Cut sections into overlapping chunks.
    Chunk,
    /// Compute one vector per chunk.
    Embed,
    /// Check the chunks are complete and hand the document to reviewers.
    Index,
    /// Waiting for two reviewers.
    Review,
    /// Published and searchable.
    Publish,
}

impl Stage {
    /// Every stage in pipeline order.
    pub const ALL: [Stage; 8] = [
        Stage::Fetch,
        Stage::Extract,
        Stage::Sanitize,
        Stage::Chunk,
        Stage::Embed,
        Stage::Index,
        Stage::Review,
        Stage::Publish,
    ];

    /// Returns the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fetch => "fetch",
            Self::Extract => "extract",
            Self::Sanitize => "sanitize",
            Self::Chunk => "chunk",
            Self::Embed => "embed",
            Self::Index => "index",
            Self::Review => "review",
            Self::Publish => "publish",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|stage| stage.as_str() == text)
    }

    /// Returns the job kind that runs this stage, for the automatic stages.
    pub fn job_kind(self) -> Option<&'static str> {
        match self {
            Self::Fetch => Some("knowledge.fetch"),
            Self::Extract => Some("knowledge.extract"),
            Self::Sanitize => Some("knowledge.sanitize"),
            Self::Chunk => Some("knowledge.chunk"),
            Self::Embed => Some("knowledge.embed"),
            Self::Index => Some("knowledge.index"),
            Self::Review | Self::Publish => None,
        }
    }

    /// Returns the pipeline progress (0-100) when this stage starts. Embedding is most of the
    /// work, so it gets the widest band.
    pub fn starts_at(self) -> i16 {
        match self {
            Self::Fetch => 0,
            Self::Extract => 10,
            Self::Sanitize => 20,
            Self::Chunk => 25,
            Self::Embed => 30,
            Self::Index => 90,
            Self::Review => 95,
            Self::Publish => 100,
        }
    }
}

/// An embedder built on first use, so processes that never embed do not load the model. A
/// missing model then fails the call that needed it, with the fix in the message, instead of
/// failing start-up.
pub struct LazyEmbedder {
    settings: embed::EmbeddingSettings,
    model_id: String,
    loaded: tokio::sync::OnceCell<std::sync::Arc<dyn embed::Embedder>>,
}

impl LazyEmbedder {
    /// Creates a lazy local embedder with `settings`; only the local backend can be built
    /// lazily, because the provider backend needs a configured provider.
    pub fn local(settings: embed::EmbeddingSettings) -> Self {
        Self {
            settings,
            model_id: embed::LOCAL_MODEL_ID.to_string(),
            loaded: tokio::sync::OnceCell::new(),
        }
    }
}

impl LazyEmbedder {
    /// Returns the loaded model, loading it on the first call.
    async fn loaded(&self) -> Result<&std::sync::Arc<dyn embed::Embedder>, embed::EmbedError> {
        let settings = self.settings.clone();
        self.loaded
            .get_or_try_init(|| async move { embed::build_embedder(&settings, None).await })
            .await
    }
}

impl std::fmt::Debug for LazyEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyEmbedder")
            .field("model_dir", &self.settings.model_dir)
            .field("loaded", &self.loaded.initialized())
            .finish()
    }
}

#[async_trait::async_trait]
impl embed::Embedder for LazyEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        embed::EMBEDDING_DIMENSIONS
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, embed::EmbedError> {
        self.loaded().await?.embed(texts).await
    }

    async fn embed_for(
        &self,
        tenant: crate::ids::TenantId,
        correlation_id: &str,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, embed::EmbedError> {
        self.loaded()
            .await?
            .embed_for(tenant, correlation_id, texts)
            .await
    }
}
