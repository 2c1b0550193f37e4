//! Sentence embeddings: the local all-MiniLM-L6-v2 model on the real model files, and the
//! provider embedder against a fake OpenAI-compatible server on 127.0.0.1.
//!
//! The local tests need the model in EMBEDDING_MODEL_DIR (default .data/models/all-MiniLM-L6-v2,
//! filled by scripts/fetch-model.sh). Without it they fail with a message that names the fix.

#[allow(dead_code)]
#[path = "support/fake_providers.rs"]
mod fake_providers;

use std::sync::Arc;

use backend::jobs::ErrorClass;
use backend::knowledge::embed::{
    build_embedder, EmbedError, Embedder, EmbeddingBackend, EmbeddingSettings, LocalEmbedder,
    ProviderEmbedder, ProviderEmbedding, EMBEDDING_DIMENSIONS, LOCAL_MODEL_ID,
};
use backend::providers::{OpenAiConfig, OpenAiProvider, Provider};
use fake_providers::{FakeServer, Flavor};

/// Loads the local model with `batch_size`; every call after the first reuses the loaded model.
fn local(batch_size: usize) -> LocalEmbedder {
    let settings = EmbeddingSettings::from_env().unwrap_or_else(|error| panic!("{error}"));
    LocalEmbedder::load(&settings.model_dir, batch_size).unwrap_or_else(|error| panic!("{error}"))
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|text| text.to_string()).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(vector: &[f32]) -> f32 {
    dot(vector, vector).sqrt()
}

fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// About `chars` characters of regulation-like prose, different for each `seed`.
fn long_text(seed: &str, chars: usize) -> String {
    let sentence = format!(
        "Section {seed}: the employer shall inspect every exit route, keep it free of \
         obstructions and mark it with an illuminated sign. "
    );
    sentence.repeat(chars / sentence.len() + 1)[..chars].to_string()
}

#[tokio::test]
async fn vectors_have_unit_length() {
    let embedder = local(32);
    assert_eq!(embedder.model_id(), LOCAL_MODEL_ID);
    assert_eq!(embedder.dimensions(), EMBEDDING_DIMENSIONS);

    let texts = strings(&[
        "Exit signs must be illuminated.",
        "Guards patrol the loading dock every two hours.",
        "z",
    ]);
    let vectors = embedder.embed(&texts).await.unwrap();

    assert_eq!(vectors.len(), texts.len());
    for (text, vector) in texts.iter().zip(&vectors) {
        assert_eq!(vector.len(), 384, "{text}");
        assert!(
            (norm(vector) - 1.0).abs() < 1e-5,
            "{text}: {}",
            norm(vector)
        );
    }
}

#[tokio::test]
async fn batch_matches_texts_embedded_alone() {
    let texts = vec![
        "Fire doors".to_string(),
        "Exit routes must be kept free of obstructions at all times.".to_string(),
        long_text("1910.37", 900),
        "Each employer shall post the emergency action plan where employees can read it, \
         review it with each employee when the plan is developed, and again whenever the \
         employee's responsibilities change."
            .to_string(),
        long_text("1910.36", 5_000),
    ];

    // One batch for everything: the short texts carry up to 250 padding tokens.
    let batched = local(32).embed(&texts).await.unwrap();
    // Batches of two, so texts are grouped by length and put back in order.
    let paired = local(2).embed(&texts).await.unwrap();

    let alone_embedder = local(32);
    for (index, text) in texts.iter().enumerate() {
        let alone = alone_embedder
            .embed(std::slice::from_ref(text))
            .await
            .unwrap();
        let in_batch = max_abs_difference(&alone[0], &batched[index]);
        assert!(in_batch < 1e-4, "text {index}: difference {in_batch}");
        let in_pairs = max_abs_difference(&alone[0], &paired[index]);
        assert!(in_pairs < 1e-4, "text {index}: difference {in_pairs}");
    }
}

#[tokio::test]
async fn related_facility_texts_are_closer() {
    let cases = [
        (
            "Exit signs must be illuminated",
            "lighting for exit route markings",
            "forklift battery charging",
        ),
        (
            "Fire extinguishers are inspected every month",
            "monthly inspection of portable extinguishers",
            "parking spaces for vans must be accessible",
        ),
        (
            "Toilet rooms shall be kept clean and sanitary",
            "restroom housekeeping and hygiene",
            "the alarm must be audible above ambient noise",
        ),
    ];
    let embedder = local(32);

    for (anchor, related, unrelated) in cases {
        let vectors = embedder
            .embed(&strings(&[anchor, related, unrelated]))
            .await
            .unwrap();
        let close = dot(&vectors[0], &vectors[1]);
        let far = dot(&vectors[0], &vectors[2]);
        assert!(
            close > far + 0.1,
            "{anchor:?}: related {close:.3}, unrelated {far:.3}"
        );
    }
}

/// The sentence-transformers documentation publishes the cosine similarities of three sentences
/// under all-MiniLM-L6-v2, rounded to four decimals: 0.6660, 0.1046 and 0.1411 (usage example
/// at https://sbert.net/docs/sentence_transformer/usage/usage.html). Matching them checks the
/// tokenizer, weights, pooling and normalisation together against the reference Python code.
#[tokio::test]
async fn published_similarities_match() {
    let texts = strings(&[
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ]);
    let vectors = local(32).embed(&texts).await.unwrap();

    let published = [(0, 1, 0.6660f32), (0, 2, 0.1046), (1, 2, 0.1411)];
    for (first, second, expected) in published {
        let similarity = dot(&vectors[first], &vectors[second]);
        assert!(
            (similarity - expected).abs() < 5e-4,
            "similarity of texts {first} and {second}: {similarity:.5}, published {expected}"
        );
    }
}

#[tokio::test]
async fn duplicates_are_embedded_once() {
    let embedder = local(32);
    let texts = strings(&[
        "Inspect the sprinkler valves weekly.",
        "Test the emergency lights monthly.",
        "Inspect the sprinkler valves weekly.",
        "",
        "Inspect the sprinkler valves weekly.",
        "",
    ]);

    let vectors = embedder.embed(&texts).await.unwrap();

    assert_eq!(embedder.encoded_texts(), 3);
    assert_eq!(vectors.len(), 6);
    assert_eq!(vectors[0], vectors[2]);
    assert_eq!(vectors[0], vectors[4]);
    assert_eq!(vectors[3], vectors[5]);
    assert_ne!(vectors[0], vectors[1]);
}

#[tokio::test]
async fn empty_call_runs_nothing() {
    let embedder = local(32);
    let vectors = embedder.embed(&[]).await.unwrap();
    assert!(vectors.is_empty());
    assert_eq!(embedder.encoded_texts(), 0);
}

#[tokio::test]
async fn empty_and_long_texts_work() {
    let embedder = local(32);
    let prefix = long_text("1910.38", 2_000);
    // Both texts are 10,000 characters and differ only after character 2,000, far beyond
    // 256 tokens, so truncation must give them the same vector.
    let first = format!("{prefix}{}", "fire drill ".repeat(800))[..10_000].to_string();
    let second = format!("{prefix}{}", "forklift battery ".repeat(500))[..10_000].to_string();
    let texts = vec![String::new(), first, second];

    let vectors = embedder.embed(&texts).await.unwrap();

    for vector in &vectors {
        assert_eq!(vector.len(), 384);
        assert!((norm(vector) - 1.0).abs() < 1e-5);
    }
    let difference = max_abs_difference(&vectors[1], &vectors[2]);
    assert!(
        difference < 1e-5,
        "texts equal in their first 256 tokens differ by {difference}"
    );
}

#[tokio::test]
async fn concurrent_calls_give_same_vectors() {
    let embedder = local(4);
    let first = strings(&[
        "Lock the roof hatch.",
        "Check the fire pump.",
        "Patrol zone B.",
    ]);
    let second = strings(&["Check the fire pump.", "Clean the grease trap."]);

    let (together_first, together_second) =
        tokio::join!(embedder.embed(&first), embedder.embed(&second));
    let alone_first = embedder.embed(&first).await.unwrap();
    let alone_second = embedder.embed(&second).await.unwrap();

    let together_first = together_first.unwrap();
    let together_second = together_second.unwrap();
    for (a, b) in together_first.iter().zip(&alone_first) {
        assert!(max_abs_difference(a, b) < 1e-6);
    }
    for (a, b) in together_second.iter().zip(&alone_second) {
        assert!(max_abs_difference(a, b) < 1e-6);
    }
}

#[tokio::test]
async fn settings_build_local_embedder() {
    let settings = EmbeddingSettings::from_env().unwrap();
    assert_eq!(settings.backend, EmbeddingBackend::Local);

    let embedder = build_embedder(&settings, None)
        .await
        .unwrap_or_else(|error| panic!("{error}"));

    assert_eq!(embedder.model_id(), LOCAL_MODEL_ID);
    let vectors = embedder
        .embed(&strings(&["Lock the roof hatch."]))
        .await
        .unwrap();
    assert_eq!(vectors[0].len(), EMBEDDING_DIMENSIONS);
}

#[tokio::test]
async fn missing_model_dir_names_fix() {
    let settings = EmbeddingSettings {
        model_dir: "/nonexistent/siteline/all-MiniLM-L6-v2".into(),
        ..EmbeddingSettings::default()
    };

    let error = build_embedder(&settings, None).await.err().unwrap();

    assert!(matches!(error, EmbedError::ModelMissing { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("/nonexistent/siteline/all-MiniLM-L6-v2"),
        "{message}"
    );
    assert!(message.contains("scripts/fetch-model.sh"), "{message}");
    assert!(message.contains("EMBEDDING_MODEL_DIR"), "{message}");
}

#[tokio::test]
async fn openai_backend_needs_provider() {
    let settings = EmbeddingSettings {
        backend: EmbeddingBackend::OpenAi,
        ..EmbeddingSettings::default()
    };

    let error = build_embedder(&settings, None).await.err().unwrap();

    let message = error.to_string();
    assert!(message.contains("EMBEDDING_BACKEND"), "{message}");
    assert!(message.contains("EMBEDDING_BACKEND=local"), "{message}");
    assert_eq!(error.class(), ErrorClass::Permanent);
}

fn fake_openai(server: &FakeServer) -> Arc<dyn Provider> {
    let mut config = OpenAiConfig::new(server.base_url.clone(), "gpt-fake");
    config.embedding_model = Some("embed-fake".to_string());
    Arc::new(OpenAiProvider::new(config).expect("the fake provider config is valid"))
}

#[tokio::test]
async fn provider_embedder_batches_unique_texts() {
    let server = FakeServer::start(Flavor::OpenAi).await;
    // The fake server returns [i, 1, 0.5] for the i-th input of each request.
    let embedder = ProviderEmbedder::new(fake_openai(&server), "embed-fake", 3, 2).unwrap();
    let texts = strings(&["alpha", "beta", "alpha", "gamma", "beta"]);

    let vectors = embedder.embed(&texts).await.unwrap();

    let inputs: Vec<serde_json::Value> = server
        .requests()
        .iter()
        .map(|request| request.body["input"].clone())
        .collect();
    assert_eq!(
        inputs,
        vec![
            serde_json::json!(["alpha", "beta"]),
            serde_json::json!(["gamma"])
        ]
    );

    let first = [0.0f32, 1.0, 0.5].map(|value| value / 1.25f32.sqrt());
    let second = [1.0f32, 1.0, 0.5].map(|value| value / 2.25f32.sqrt());
    let expected = [first, second, first, first, second];
    assert_eq!(vectors.len(), expected.len());
    for (vector, expected) in vectors.iter().zip(expected) {
        assert!(max_abs_difference(vector, &expected) < 1e-6, "{vector:?}");
    }
    assert_eq!(embedder.model_id(), "embed-fake");
}

#[tokio::test]
async fn provider_dimension_mismatch_is_clear() {
    let server = FakeServer::start(Flavor::OpenAi).await;
    let embedding = ProviderEmbedding {
        provider: fake_openai(&server),
        model_id: "embed-fake".to_string(),
    };
    let settings = EmbeddingSettings {
        backend: EmbeddingBackend::OpenAi,
        ..EmbeddingSettings::default()
    };
    let embedder = build_embedder(&settings, Some(embedding)).await.unwrap();
    assert_eq!(embedder.dimensions(), EMBEDDING_DIMENSIONS);

    let error = embedder
        .embed(&strings(&["Exit signs must be illuminated"]))
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            EmbedError::DimensionMismatch {
                expected: 384,
                actual: 3,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("embed-fake"), "{error}");
    assert_eq!(error.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn provider_failure_keeps_its_class() {
    let server = FakeServer::start(Flavor::OpenAi).await;
    let mut config = OpenAiConfig::new(server.base_url.clone(), "gpt-fake");
    // Without an embedding model the provider rejects the call before sending it.
    config.embedding_model = None;
    let provider: Arc<dyn Provider> = Arc::new(OpenAiProvider::new(config).unwrap());
    let embedder = ProviderEmbedder::new(provider, "embed-fake", 3, 8).unwrap();

    let error = embedder.embed(&strings(&["text"])).await.unwrap_err();

    assert!(matches!(error, EmbedError::Provider(_)), "{error}");
    assert_eq!(error.class(), ErrorClass::Permanent);
    assert!(server.requests().is_empty());
}
