//! Sentence embeddings for document chunks and search queries.
//!
//! [`LocalEmbedder`] runs sentence-transformers/all-MiniLM-L6-v2 in-process with candle: BERT
//! over at most 256 tokens, mean pooling over the real tokens, then L2 normalisation, which
//! reproduces the sentence-transformers pipeline of that model. [`ProviderEmbedder`] sends the
//! texts to a model provider's embeddings endpoint instead. [`build_embedder`] picks one from
//! [`EmbeddingSettings`]. Both embed identical texts once per call and return unit vectors, so
//! cosine similarity is the inner product.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::ids::TenantId;
use crate::jobs::{ErrorClass, JobError};
use crate::providers::gateway::{GatewayError, OfflineReason};
use crate::providers::{Gateway, Provider, ProviderError};

/// Model id recorded with each vector of the local model.
pub const LOCAL_MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// Length of the vectors the knowledge base stores: the `vector(384)` column, and the output
/// size of all-MiniLM-L6-v2.
pub const EMBEDDING_DIMENSIONS: usize = 384;

/// Maximum tokens per text, `[CLS]` and `[SEP]` included. The model's
/// `sentence_bert_config.json` sets `max_seq_length` 256, although its position table has 512
/// entries; sentence-transformers truncates there, so longer input changes nothing.
pub const LOCAL_MAX_TOKENS: usize = 256;

/// Default of `EMBEDDING_BATCH_SIZE`.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Largest accepted `EMBEDDING_BATCH_SIZE`. One layer's attention scores for 512 texts of 256
/// tokens take 1.6 GB (512 x 12 heads x 256 x 256 f32), so larger batches risk running out of
/// memory.
pub const MAX_BATCH_SIZE: usize = 512;

/// Environment variable that selects the backend: `local` or `openai`.
pub const ENV_BACKEND: &str = "EMBEDDING_BACKEND";
/// Environment variable with the folder of the local model files.
pub const ENV_MODEL_DIR: &str = "EMBEDDING_MODEL_DIR";
/// Environment variable with the number of texts per model call.
pub const ENV_BATCH_SIZE: &str = "EMBEDDING_BATCH_SIZE";

/// The files [`LocalEmbedder`] reads from the model folder.
const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// The fix named by every error about the model folder.
const MODEL_DIR_FIX: &str = "run scripts/fetch-model.sh, or set EMBEDDING_MODEL_DIR to a folder \
                             with model.safetensors, tokenizer.json and config.json of \
                             all-MiniLM-L6-v2";

/// A sentence-embedding model.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Returns the model id stored with each vector.
    fn model_id(&self) -> &str;

    /// Returns the length of every vector.
    fn dimensions(&self) -> usize;

    /// Returns one unit-length vector per text, in input order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// Embeds texts on behalf of `tenant`, for work that can be charged to one: a provider
    /// backend then goes through the gateway's breaker, rate limits, budget and call records.
    /// The local model has no such costs, so by default this is [`Embedder::embed`].
    async fn embed_for(
        &self,
        tenant: TenantId,
        correlation_id: &str,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let _ = (tenant, correlation_id);
        self.embed(texts).await
    }
}

/// Why embedding failed or could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model folder or one of its files is missing.
    #[error("embedding model folder {}: {problem}; {MODEL_DIR_FIX}", .dir.display())]
    ModelMissing { dir: PathBuf, problem: String },

    /// A model file exists but cannot be read or parsed.
    #[error("embedding model file {} is invalid: {detail}; {MODEL_DIR_FIX}", .path.display())]
    ModelInvalid { path: PathBuf, detail: String },

    /// The tokenizer rejected the input.
    #[error("tokenizing the texts failed: {detail}")]
    Tokenize { detail: String },

    /// The local model failed while computing.
    #[error("the local embedding model failed: {detail}")]
    Inference { detail: String },

    /// The model provider's embeddings call failed.
    #[error("the embeddings call failed: {0}")]
    Provider(#[from] ProviderError),

    /// The model returned vectors of another length than configured.
    #[error(
        "model {model} returned vectors of {actual} dimensions, but {expected} are configured; \
         the knowledge base stores {expected}-dimensional vectors, so configure an embedding \
         model of that size"
    )]
    DimensionMismatch {
        model: String,
        expected: usize,
        actual: usize,
    },

    /// The provider's response is unusable: wrong vector count, non-finite or zero vectors.
    #[error("the embeddings of model {model} are invalid: {detail}")]
    InvalidOutput { model: String, detail: String },

    /// An embedding setting has an invalid value.
    #[error("invalid setting {name}={value:?}: {detail}")]
    InvalidSetting {
        name: &'static str,
        value: String,
        detail: String,
    },

    /// The blocking task that ran the model panicked or was cancelled.
    #[error("the embedding task ended without a result: {detail}")]
    TaskFailed { detail: String },

    /// The embedding provider may not be called now: its breaker is open, its rate limit is
    /// used up, it failed, or the tenant is over its monthly token budget.
    #[error("the embedding provider is not usable now: {0}")]
    Unavailable(OfflineReason),

    /// The gateway's breaker, rate-limit or budget bookkeeping failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

impl EmbedError {
    /// Returns the job error class: provider failures keep their own class, invalid provider
    /// output may clear on a retry, and everything else is permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            EmbedError::Provider(error) => error.class(),
            EmbedError::InvalidOutput { .. } => ErrorClass::ModelProvider,
            EmbedError::Unavailable(reason) => reason.clone().into_job_error().class,
            EmbedError::Gateway(GatewayError::Database(_)) => ErrorClass::Database,
            _ => ErrorClass::Permanent,
        }
    }
}

impl From<EmbedError> for JobError {
    fn from(error: EmbedError) -> Self {
        match error {
            EmbedError::Provider(error) => error.into_job_error(),
            EmbedError::Unavailable(reason) => reason.into_job_error(),
            EmbedError::Gateway(error) => error.into(),
            other => JobError::new(other.class(), other.to_string()),
        }
    }
}

/// Place where embeddings are computed: the local model or a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingBackend {
    /// all-MiniLM-L6-v2 in this process.
    Local,
    /// The configured OpenAI-compatible provider's `embeddings` endpoint.
    OpenAi,
}

impl FromStr for EmbeddingBackend {
    type Err = EmbedError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(EmbeddingBackend::Local),
            "openai" => Ok(EmbeddingBackend::OpenAi),
            _ => Err(EmbedError::InvalidSetting {
                name: ENV_BACKEND,
                value: value.to_string(),
                detail: "use local or openai".to_string(),
            }),
        }
    }
}

impl fmt::Display for EmbeddingBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EmbeddingBackend::Local => "local",
            EmbeddingBackend::OpenAi => "openai",
        })
    }
}

/// The embedding settings, from `EMBEDDING_BACKEND`, `EMBEDDING_MODEL_DIR` and
/// `EMBEDDING_BATCH_SIZE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingSettings {
    /// Backend that computes the embeddings.
    pub backend: EmbeddingBackend,
    /// Folder with model.safetensors, tokenizer.json and config.json of the local model.
    pub model_dir: PathBuf,
    /// Texts per model call or provider request, 1 to [`MAX_BATCH_SIZE`].
    pub batch_size: usize,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            backend: EmbeddingBackend::Local,
            model_dir: default_model_dir(),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

impl EmbeddingSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, EmbedError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's value. Unset and empty
    /// variables take the defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EmbedError> {
        let read = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let mut settings = Self::default();

        if let Some(value) = read(ENV_BACKEND) {
            settings.backend = value.parse()?;
        }
        if let Some(value) = read(ENV_MODEL_DIR) {
            settings.model_dir = PathBuf::from(value);
        }
        if let Some(value) = read(ENV_BATCH_SIZE) {
            settings.batch_size = parse_batch_size(&value)?;
        }
        Ok(settings)
    }
}

/// Returns `.data/models/all-MiniLM-L6-v2` in the repository this crate was built from, where
/// scripts/fetch-model.sh puts the model. Deployed binaries set `EMBEDDING_MODEL_DIR` instead.
pub fn default_model_dir() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo_root = crate_dir.parent().unwrap_or(crate_dir);
    repo_root.join(".data/models/all-MiniLM-L6-v2")
}

fn parse_batch_size(value: &str) -> Result<usize, EmbedError> {
    let invalid = || EmbedError::InvalidSetting {
        name: ENV_BATCH_SIZE,
        value: value.to_string(),
        detail: format!("use a whole number from 1 to {MAX_BATCH_SIZE}"),
    };
    let size: usize = value.trim().parse().map_err(|_| invalid())?;
    if !(1..=MAX_BATCH_SIZE).contains(&size) {
        return Err(invalid());
    }
    Ok(size)
}

/// An OpenAI-compatible provider and the embedding model configured on it, for the `openai`
/// backend.
#[derive(Clone)]
pub struct ProviderEmbedding {
    /// The provider whose [`Provider::embed`] computes the vectors.
    pub provider: Arc<dyn Provider>,
    /// The embedding model name sent to the provider, stored with each vector.
    pub model_id: String,
}

/// The purpose recorded with every provider call that embeds knowledge chunks or queries.
pub const EMBEDDING_PURPOSE: &str = "knowledge_embeddings";

/// Builds the embedder that `settings` select. The `openai` backend needs `provider`; the
/// `local` backend loads the model (once per process and folder) on a blocking thread.
pub async fn build_embedder(
    settings: &EmbeddingSettings,
    provider: Option<ProviderEmbedding>,
) -> Result<Arc<dyn Embedder>, EmbedError> {
    match settings.backend {
        EmbeddingBackend::Local => {
            let dir = settings.model_dir.clone();
            let batch_size = settings.batch_size;
            let embedder =
                tokio::task::spawn_blocking(move || LocalEmbedder::load(&dir, batch_size))
                    .await
                    .map_err(|error| EmbedError::TaskFailed {
                        detail: error.to_string(),
                    })??;
            Ok(Arc::new(embedder))
        }
        EmbeddingBackend::OpenAi => {
            let Some(provider) = provider else {
                return Err(EmbedError::InvalidSetting {
                    name: ENV_BACKEND,
                    value: settings.backend.to_string(),
                    detail: "no OpenAI-compatible provider with an embedding model is \
                             configured; configure one or set EMBEDDING_BACKEND=local"
                        .to_string(),
                });
            };
            let embedder = ProviderEmbedder::new(
                provider.provider,
                provider.model_id,
                EMBEDDING_DIMENSIONS,
                settings.batch_size,
            )?;
            Ok(Arc::new(embedder))
        }
    }
}

/// The texts of one call with duplicates removed: `unique` contains each distinct text once, and
/// `slots[i]` is the index in `unique` of input text `i`.
struct Deduplicated<'a> {
    unique: Vec<&'a str>,
    slots: Vec<usize>,
}

impl<'a> Deduplicated<'a> {
    fn new(texts: &'a [String]) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(texts.len());
        let mut unique = Vec::new();
        let slots = texts
            .iter()
            .map(|text| {
                *index.entry(text.as_str()).or_insert_with(|| {
                    unique.push(text.as_str());
                    unique.len() - 1
                })
            })
            .collect();
        Self { unique, slots }
    }

    /// Expands one vector per unique text into one vector per input text.
    fn expand(&self, vectors: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        self.slots
            .iter()
            .map(|&slot| vectors[slot].clone())
            .collect()
    }
}

/// The loaded local model, shared by every [`LocalEmbedder`] of the same folder.
struct LocalModel {
    tokenizer: Tokenizer,
    bert: BertModel,
    pad_token_id: u32,
    /// Serialises model runs batch by batch: concurrent calls take turns per batch, so a
    /// short search query waits for at most one batch of a long ingestion call.
    run_lock: Mutex<()>,
}

/// Loaded models by canonical folder path, so that each folder is read once per process.
fn model_cache() -> &'static Mutex<HashMap<PathBuf, Arc<LocalModel>>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<LocalModel>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// all-MiniLM-L6-v2 run in this process with candle on the CPU.
#[derive(Clone)]
pub struct LocalEmbedder {
    model: Arc<LocalModel>,
    batch_size: usize,
    encoded_texts: Arc<AtomicU64>,
}

impl fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// Loads the model from `dir`, or reuses it when this process loaded that folder before.
    /// This blocks for about a second on the first load, so async code calls it through
    /// `spawn_blocking` (as [`build_embedder`] does).
    pub fn load(dir: &Path, batch_size: usize) -> Result<Self, EmbedError> {
        if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
            return Err(EmbedError::InvalidSetting {
                name: ENV_BATCH_SIZE,
                value: batch_size.to_string(),
                detail: format!("use a whole number from 1 to {MAX_BATCH_SIZE}"),
            });
        }
        let dir = check_model_dir(dir)?;

        // The lock is held while loading so that concurrent first calls load the files once.
        let mut cache = model_cache()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let model = match cache.get(&dir) {
            Some(model) => Arc::clone(model),
            None => {
                let started = Instant::now();
                let model = Arc::new(load_model(&dir)?);
                tracing::info!(
                    model_dir = %dir.display(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "loaded the local embedding model"
                );
                cache.insert(dir, Arc::clone(&model));
                model
            }
        };
        Ok(Self {
            model,
            batch_size,
            encoded_texts: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Returns how many texts this embedder (and its clones) ran through the model, counting
    /// each distinct text of a call once. Tests use it to check deduplication.
    pub fn encoded_texts(&self) -> u64 {
        self.encoded_texts.load(Ordering::Relaxed)
    }

    /// Embeds `texts` on the calling thread, which blocks until the model is done.
    fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let dedup = Deduplicated::new(texts);
        let encodings = self
            .model
            .tokenizer
            .encode_batch(dedup.unique.clone(), true)
            .map_err(|error| EmbedError::Tokenize {
                detail: error.to_string(),
            })?;

        // Batches of texts of similar token counts need less padding, so texts are grouped by
        // length and the vectors put back in input order afterwards.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&index| encodings[index].get_ids().len());

        let mut vectors = vec![Vec::new(); encodings.len()];
        for batch in order.chunks(self.batch_size) {
            let token_ids: Vec<&[u32]> = batch
                .iter()
                .map(|&index| encodings[index].get_ids())
                .collect();
            let batch_vectors = self.model.run(&token_ids)?;
            for (&index, vector) in batch.iter().zip(batch_vectors) {
                vectors[index] = vector;
            }
        }
        self.encoded_texts
            .fetch_add(dedup.unique.len() as u64, Ordering::Relaxed);
        Ok(dedup.expand(vectors))
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model_id(&self) -> &str {
        LOCAL_MODEL_ID
    }

    fn dimensions(&self) -> usize {
        EMBEDDING_DIMENSIONS
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let embedder = self.clone();
        let owned = texts.to_vec();
        let vectors = tokio::task::spawn_blocking(move || embedder.embed_blocking(&owned))
            .await
            .map_err(|error| EmbedError::TaskFailed {
                detail: error.to_string(),
            })??;
        tracing::debug!(
            texts = texts.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "embedded texts with the local model"
        );
        Ok(vectors)
    }
}

/// Checks that `dir` contains the model files and returns its canonical path.
fn check_model_dir(dir: &Path) -> Result<PathBuf, EmbedError> {
    let missing = |problem: String| EmbedError::ModelMissing {
        dir: dir.to_path_buf(),
        problem,
    };
    if !dir.is_dir() {
        return Err(missing("the folder does not exist".to_string()));
    }
    let absent: Vec<&str> = MODEL_FILES
        .iter()
        .copied()
        .filter(|name| !dir.join(name).is_file())
        .collect();
    if !absent.is_empty() {
        return Err(missing(format!("{} missing", absent.join(", "))));
    }
    dir.canonicalize()
        .map_err(|error| missing(format!("the path cannot be resolved ({error})")))
}

fn load_model(dir: &Path) -> Result<LocalModel, EmbedError> {
    let config_path = dir.join("config.json");
    let invalid = |path: &Path, detail: String| EmbedError::ModelInvalid {
        path: path.to_path_buf(),
        detail,
    };

    let config_text = std::fs::read_to_string(&config_path)
        .map_err(|error| invalid(&config_path, error.to_string()))?;
    let config: BertConfig = serde_json::from_str(&config_text)
        .map_err(|error| invalid(&config_path, format!("not a BERT configuration ({error})")))?;
    if config.hidden_size != EMBEDDING_DIMENSIONS {
        return Err(invalid(
            &config_path,
            format!(
                "hidden_size is {}, but all-MiniLM-L6-v2 has {EMBEDDING_DIMENSIONS}",
                config.hidden_size
            ),
        ));
    }

    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer = load_tokenizer(&tokenizer_path, &config)?;

    // Reading the weights into memory, rather than memory-mapping them, needs no unsafe code
    // and cannot break if the file is replaced while the server runs.
    let weights_path = dir.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)
        .map_err(|error| invalid(&weights_path, error.to_string()))?;
    let weights = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let bert = BertModel::load(weights, &config).map_err(|error| {
        invalid(
            &weights_path,
            format!("the weights do not fit the configuration ({error})"),
        )
    })?;

    let pad_token_id = u32::try_from(config.pad_token_id).map_err(|_| {
        invalid(
            &config_path,
            format!("pad_token_id {} is out of range", config.pad_token_id),
        )
    })?;
    Ok(LocalModel {
        tokenizer,
        bert,
        pad_token_id,
        run_lock: Mutex::new(()),
    })
}

/// Loads the tokenizer with its padding removed and its truncation set to the model's limit.
/// The file pads every text to 128 tokens and truncates at 128; the padding is done per batch
/// in [`LocalModel::run`] instead, with an attention mask.
fn load_tokenizer(path: &Path, config: &BertConfig) -> Result<Tokenizer, EmbedError> {
    let invalid = |detail: String| EmbedError::ModelInvalid {
        path: path.to_path_buf(),
        detail,
    };
    let mut tokenizer = Tokenizer::from_file(path).map_err(|error| invalid(error.to_string()))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: LOCAL_MAX_TOKENS.min(config.max_position_embeddings),
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|error| invalid(format!("truncation cannot be set ({error})")))?;
    Ok(tokenizer)
}

impl LocalModel {
    /// Runs one batch of token id sequences through BERT and returns the mean-pooled,
    /// L2-normalised vector of each.
    fn run(&self, token_ids: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inference = |error: candle_core::Error| EmbedError::Inference {
            detail: error.to_string(),
        };
        let rows = token_ids.len();
        let width = token_ids.iter().map(|ids| ids.len()).max().unwrap_or(0);

        // Shorter sequences are padded to the longest; the mask keeps the padding out of
        // attention and out of the mean, so a text gets the same vector in any batch.
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for sequence in token_ids {
            ids.extend_from_slice(sequence);
            ids.extend(std::iter::repeat_n(
                self.pad_token_id,
                width - sequence.len(),
            ));
            mask.extend(std::iter::repeat_n(1u32, sequence.len()));
            mask.extend(std::iter::repeat_n(0u32, width - sequence.len()));
        }
        let device = &self.bert.device;
        let ids = Tensor::from_vec(ids, (rows, width), device).map_err(inference)?;
        let mask = Tensor::from_vec(mask, (rows, width), device).map_err(inference)?;
        let token_type_ids = ids.zeros_like().map_err(inference)?;

        let hidden = {
            let _turn = self
                .run_lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.bert
                .forward(&ids, &token_type_ids, Some(&mask))
                .map_err(inference)?
        };

        let pooled = mean_pool(&hidden, &mask).map_err(inference)?;
        let normalized = l2_normalize(&pooled).map_err(inference)?;
        normalized.to_vec2::<f32>().map_err(inference)
    }
}

/// Averages the hidden states `(rows, width, hidden)` over the positions where `mask` is 1.
fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let sums = hidden.broadcast_mul(&mask)?.sum(1)?;
    // Every sequence has at least [CLS] and [SEP], so no count is zero.
    let counts = mask.sum(1)?;
    sums.broadcast_div(&counts)
}

/// Scales each row to length 1.
fn l2_normalize(rows: &Tensor) -> candle_core::Result<Tensor> {
    let norms = rows.sqr()?.sum_keepdim(1)?.sqrt()?;
    rows.broadcast_div(&norms.clamp(1e-12f32, f32::MAX)?)
}

/// Embeddings from a model provider's embeddings endpoint, such as an OpenAI-compatible
/// server, checked for count and length and normalised to unit length.
pub struct ProviderEmbedder {
    provider: Arc<dyn Provider>,
    model_id: String,
    dimensions: usize,
    batch_size: usize,
    /// Bookkeeping for calls made for a tenant; without it every call goes straight out.
    gateway: Option<Arc<Gateway>>,
}

impl fmt::Debug for ProviderEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderEmbedder")
            .field("provider", &self.provider.kind())
            .field("model_id", &self.model_id)
            .field("dimensions", &self.dimensions)
            .field("batch_size", &self.batch_size)
            .field("through_gateway", &self.gateway.is_some())
            .finish()
    }
}

impl ProviderEmbedder {
    /// Wraps `provider`, whose embedding model `model_id` returns vectors of `dimensions`
    /// values; each request carries at most `batch_size` texts.
    pub fn new(
        provider: Arc<dyn Provider>,
        model_id: impl Into<String>,
        dimensions: usize,
        batch_size: usize,
    ) -> Result<Self, EmbedError> {
        let model_id = model_id.into();
        if model_id.trim().is_empty() {
            return Err(EmbedError::InvalidSetting {
                name: "embedding model",
                value: model_id,
                detail: "the model name is empty; set the embedding model the provider serves"
                    .to_string(),
            });
        }
        if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
            return Err(EmbedError::InvalidSetting {
                name: ENV_BATCH_SIZE,
                value: batch_size.to_string(),
                detail: format!("use a whole number from 1 to {MAX_BATCH_SIZE}"),
            });
        }
        Ok(Self {
            provider,
            model_id,
            dimensions,
            batch_size,
            gateway: None,
        })
    }

    /// Sends calls made for a tenant ([`Embedder::embed_for`]) through `gateway`, so they
    /// count against the provider's breaker, rate limits and the tenant's budget, and are
    /// recorded.
    pub fn with_gateway(mut self, gateway: Arc<Gateway>) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Checks one response batch and normalises its vectors.
    fn check_batch(
        &self,
        expected: usize,
        vectors: Vec<Vec<f32>>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let invalid = |detail: String| EmbedError::InvalidOutput {
            model: self.model_id.clone(),
            detail,
        };
        if vectors.len() != expected {
            return Err(invalid(format!(
                "{} vectors were returned for {expected} texts",
                vectors.len()
            )));
        }
        vectors
            .into_iter()
            .map(|mut vector| {
                if vector.len() != self.dimensions {
                    return Err(EmbedError::DimensionMismatch {
                        model: self.model_id.clone(),
                        expected: self.dimensions,
                        actual: vector.len(),
                    });
                }
                if vector.iter().any(|value| !value.is_finite()) {
                    return Err(invalid("a vector contains NaN or infinity".to_string()));
                }
                // Servers other than OpenAI's do not always return unit vectors.
                let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
                if norm == 0.0 {
                    return Err(invalid("a vector is all zeros".to_string()));
                }
                vector.iter_mut().for_each(|value| *value /= norm);
                Ok(vector)
            })
            .collect()
    }

    /// Embeds each distinct text once, `batch_size` texts per request. With a `caller`
    /// (gateway, tenant, correlation id) every request goes through the gateway's bookkeeping;
    /// without one it goes straight to the provider.
    async fn embed_batches(
        &self,
        texts: &[String],
        caller: Option<(&Gateway, TenantId, &str)>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let dedup = Deduplicated::new(texts);
        let mut vectors = Vec::with_capacity(dedup.unique.len());
        for batch in dedup.unique.chunks(self.batch_size) {
            let batch: Vec<String> = batch.iter().map(|text| text.to_string()).collect();
            let embeddings = match caller {
                Some((gateway, tenant, correlation_id)) => gateway
                    .embed_through(
                        self.provider.as_ref(),
                        tenant,
                        EMBEDDING_PURPOSE,
                        &batch,
                        correlation_id,
                    )
                    .await?
                    .map_err(EmbedError::Unavailable)?,
                None => self.provider.embed(&batch).await?,
            };
            vectors.extend(self.check_batch(batch.len(), embeddings.vectors)?);
        }
        Ok(dedup.expand(vectors))
    }
}

#[async_trait]
impl Embedder for ProviderEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_batches(texts, None).await
    }

    async fn embed_for(
        &self,
        tenant: TenantId,
        correlation_id: &str,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let caller = self
            .gateway
            .as_deref()
            .map(|gateway| (gateway, tenant, correlation_id));
        self.embed_batches(texts, caller).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn settings_default_to_local_model() {
        let settings = EmbeddingSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(settings.backend, EmbeddingBackend::Local);
        assert_eq!(settings.batch_size, DEFAULT_BATCH_SIZE);
        assert!(settings
            .model_dir
            .ends_with(".data/models/all-MiniLM-L6-v2"));
    }

    #[test]
    fn settings_read_every_variable() {
        let settings = EmbeddingSettings::from_lookup(lookup(&[
            (ENV_BACKEND, "OpenAI"),
            (ENV_MODEL_DIR, "/srv/models/minilm"),
            (ENV_BATCH_SIZE, " 8 "),
        ]))
        .unwrap();
        assert_eq!(settings.backend, EmbeddingBackend::OpenAi);
        assert_eq!(settings.model_dir, PathBuf::from("/srv/models/minilm"));
        assert_eq!(settings.batch_size, 8);
    }

    #[test]
    fn settings_treat_empty_as_unset() {
        let settings =
            EmbeddingSettings::from_lookup(lookup(&[(ENV_BACKEND, ""), (ENV_BATCH_SIZE, "  ")]))
                .unwrap();
        assert_eq!(settings, EmbeddingSettings::default());
    }

    #[test]
    fn settings_reject_bad_values() {
        for (name, value) in [
            (ENV_BACKEND, "candle"),
            (ENV_BATCH_SIZE, "0"),
            (ENV_BATCH_SIZE, "513"),
            (ENV_BATCH_SIZE, "-1"),
            (ENV_BATCH_SIZE, "eight"),
        ] {
            let error = EmbeddingSettings::from_lookup(lookup(&[(name, value)])).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(name), "{message}");
            assert!(message.contains(value), "{message}");
            assert_eq!(error.class(), ErrorClass::Permanent);
        }
    }

    #[test]
    fn dedup_maps_inputs_to_unique_texts() {
        let texts: Vec<String> = ["b", "a", "b", "", "a", ""]
            .iter()
            .map(|text| text.to_string())
            .collect();
        let dedup = Deduplicated::new(&texts);
        assert_eq!(dedup.unique, vec!["b", "a", ""]);
        assert_eq!(dedup.slots, vec![0, 1, 0, 2, 1, 2]);

        let expanded = dedup.expand(vec![vec![1.0], vec![2.0], vec![3.0]]);
        assert_eq!(
            expanded,
            vec![
                vec![1.0],
                vec![2.0],
                vec![1.0],
                vec![3.0],
                vec![2.0],
                vec![3.0]
            ]
        );
    }

    #[test]
    fn missing_folder_error_names_path_and_fix() {
        let dir = Path::new("/nonexistent/siteline-model");
        let error = LocalEmbedder::load(dir, DEFAULT_BATCH_SIZE).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("/nonexistent/siteline-model"), "{message}");
        assert!(message.contains("scripts/fetch-model.sh"), "{message}");
        assert!(message.contains("EMBEDDING_MODEL_DIR"), "{message}");
    }

    #[test]
    fn missing_files_are_listed() {
        let dir = std::env::temp_dir().join(format!("siteline-embed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        let error = LocalEmbedder::load(&dir, DEFAULT_BATCH_SIZE).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();

        let message = error.to_string();
        assert!(
            message.contains("model.safetensors, tokenizer.json missing"),
            "{message}"
        );
    }

    #[test]
    fn provider_errors_keep_their_class() {
        let error = EmbedError::Provider(ProviderError::RateLimited {
            endpoint: "http://127.0.0.1:9/v1/embeddings".to_string(),
            retry_after: Some(std::time::Duration::from_secs(4)),
            detail: String::new(),
        });
        assert_eq!(error.class(), ErrorClass::RateLimited);
        let job_error = JobError::from(error);
        assert_eq!(job_error.class, ErrorClass::RateLimited);
        assert_eq!(
            job_error.retry_after,
            Some(std::time::Duration::from_secs(4))
        );
    }
}
