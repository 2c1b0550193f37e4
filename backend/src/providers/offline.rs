//! The embedded `offline` provider: deterministic, needs no network and no key, and is the last
//! fallback when every other provider's breaker is open.

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::{ChatRequest, ChatResponse, Embeddings, Provider, ProviderError, ProviderKind};

/// Length of the offline embedding vectors, the same as common small sentence-embedding models
/// so that the vector column does not change size when one is configured.
pub const OFFLINE_EMBEDDING_DIMENSIONS: usize = 384;

/// Model name recorded for offline embeddings.
pub const OFFLINE_EMBEDDING_MODEL: &str = "offline-hashed-bag-of-words-384";

/// Weight of a word pair relative to a single word, so that shared phrases count more than
/// shared words without dominating.
const BIGRAM_WEIGHT: f32 = 0.5;

/// The deterministic provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineProvider;

impl OfflineProvider {
    /// Creates the provider; it has no settings.
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl Provider for OfflineProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Offline
    }

    fn chat_model(&self) -> &str {
        "offline-rules"
    }

    fn embedding_model(&self) -> Option<&str> {
        Some(OFFLINE_EMBEDDING_MODEL)
    }

    async fn chat_structured(&self, _request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        // The gateway never sends chat here: it answers `Answer::Offline`, and the caller runs
        // its own rules (the maker and checker stages use `recommendations::offline`).
        Err(ProviderError::Unsupported {
            detail: "the offline provider does not answer free-form chat requests: its answers \
                     come from deterministic rules in the conversation module, which callers \
                     must use instead"
                .to_string(),
        })
    }

    async fn embed(&self, texts: &[String]) -> Result<Embeddings, ProviderError> {
        let started = Instant::now();
        let vectors = texts.iter().map(|text| hashed_embedding(text)).collect();
        Ok(Embeddings {
            vectors,
            model: OFFLINE_EMBEDDING_MODEL.to_string(),
            input_tokens: 0,
            latency: started.elapsed(),
        })
    }
}

/// Embeds `text` as a hashed bag of words: each word, and each pair of adjacent words, adds
/// `±weight` to the dimension its SHA-256 selects, with weight `1 + ln(count)`, and the vector is
/// L2-normalized.
///
/// This is a lexical fallback, not a semantic embedding: texts are close only when they share
/// words after case folding and accent removal, so synonyms and translations are far apart. A
/// text without words maps to the first unit vector, so that cosine similarity stays defined.
pub fn hashed_embedding(text: &str) -> Vec<f32> {
    let words = words(text);
    let mut counts: HashMap<String, f32> = HashMap::new();
    for word in &words {
        *counts.entry(word.clone()).or_default() += 1.0;
    }
    for pair in words.windows(2) {
        *counts
            .entry(format!("{} {}", pair[0], pair[1]))
            .or_default() += BIGRAM_WEIGHT;
    }

    let mut vector = vec![0.0f32; OFFLINE_EMBEDDING_DIMENSIONS];
    for (feature, count) in counts {
        let digest = Sha256::digest(feature.as_bytes());
        let hash = u64::from_le_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"));
        let index = (hash % OFFLINE_EMBEDDING_DIMENSIONS as u64) as usize;
        let sign = if digest[8] & 1 == 0 { 1.0 } else { -1.0 };
        vector[index] += sign * (1.0 + count.ln());
    }

    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        vector[0] = 1.0;
    } else {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// Splits text into lowercase words without accents: "Zoné B-2" gives ["zone", "b", "2"].
fn words(text: &str) -> Vec<String> {
    let folded: String = text
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn embedding_is_deterministic_and_normalized() {
        let first = hashed_embedding("Fire extinguishers are inspected monthly.");
        let second = hashed_embedding("Fire extinguishers are inspected monthly.");
        assert_eq!(first, second);
        assert_eq!(first.len(), OFFLINE_EMBEDDING_DIMENSIONS);
        let norm: f32 = first.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }

    #[test]
    fn shared_words_score_higher() {
        let query = hashed_embedding("monthly fire extinguisher inspection");
        let related = hashed_embedding("Inspect each fire extinguisher monthly");
        let unrelated = hashed_embedding("Guards patrol the parking garage at night");
        assert!(cosine(&query, &related) > cosine(&query, &unrelated) + 0.2);
    }

    #[test]
    fn case_and_accents_ignored() {
        assert_eq!(hashed_embedding("Zoné B"), hashed_embedding("zone b"));
    }

    #[test]
    fn empty_text_gets_unit_vector() {
        let vector = hashed_embedding("  --  ");
        assert_eq!(vector[0], 1.0);
        assert_eq!(vector.iter().filter(|x| **x != 0.0).count(), 1);
    }

    #[tokio::test]
    async fn chat_is_unsupported_and_permanent() {
        let request = ChatRequest::new("s", "u", "out", serde_json::json!({"type": "object"}));
        let error = OfflineProvider::new()
            .chat_structured(&request)
            .await
            .unwrap_err();
        assert_eq!(error.class(), crate::jobs::ErrorClass::Permanent);
        assert!(error.to_string().contains("conversation module"), "{error}");
    }

    #[tokio::test]
    async fn embed_returns_one_vector_per_text() {
        let texts = vec!["gate".to_string(), "vault".to_string()];
        let embeddings = OfflineProvider::new().embed(&texts).await.unwrap();
        assert_eq!(embeddings.vectors.len(), 2);
        assert_eq!(embeddings.model, OFFLINE_EMBEDDING_MODEL);
    }
}
