//! Chunks per second through the whole ingestion pipeline, against the bare model's embedding
//! rate on the same texts in the same run.
//!
//! Usage: cargo bench --profile dev --bench pipeline [-- CORPUS_DIR]
//!
//! Needs DATABASE_URL, as the tests do: the bench creates its own `siteline_test_*` database.
//! It starts the real job workers and a web server on 127.0.0.1 that serves every file of
//! CORPUS_DIR (default: `shared/corpus` beside the repository, without MANIFEST.md). It submits
//! each file's URL and times the stage jobs from fetch to index until every document waits for
//! review. The fetch goes through the URL guard, whose only loopback exception is that server.
//! Then it embeds the distinct chunk texts the pipeline stored with the same model, in batches
//! of the same size, and times that.
//! EMBEDDING_MODEL_DIR and EMBEDDING_BATCH_SIZE apply as in the server. `cargo test` runs this
//! target too, without `--bench`: then it ingests only the smallest file.

use std::collections::HashMap;
use std::future::pending;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use backend::jobs::JobSettings;
use backend::knowledge::embed::{Embedder, EmbeddingSettings, LocalEmbedder};
use backend::knowledge::store::{self, NewSource, Submission, Submitter};
use backend::knowledge::{Authority, KnowledgeSettings};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// Maximum wait for the whole corpus to reach review. It took minutes on 2 cores, so a run past
/// this is stuck.
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(3_600);

fn main() {
    if let Err(message) = run() {
        eprintln!("pipeline bench: error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    if std::env::var_os("DATABASE_URL").is_none() {
        return Err(
            "DATABASE_URL is unset: point it at PostgreSQL with pgvector, as for the \
                    tests (`scripts/local-pg.sh url` prints the project-local one)"
                .into(),
        );
    }
    let corpus = corpus_dir();
    let mut files = corpus_files(&corpus)?;
    if !std::env::args().any(|arg| arg == "--bench") {
        // `cargo test` runs bench targets without `--bench`: one small file shows that the
        // bench still works without spending minutes on the model.
        files.sort_by_key(|path| std::fs::metadata(path).map_or(u64::MAX, |meta| meta.len()));
        files.truncate(1);
    }
    let embedding = EmbeddingSettings::from_env().map_err(|error| error.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|error| error.to_string())?;
    runtime.block_on(bench(&corpus, files, embedding))
}

async fn bench(
    corpus: &Path,
    files: Vec<PathBuf>,
    embedding: EmbeddingSettings,
) -> Result<(), String> {
    let pool = backend::testing::fresh_pool().await;
    // Loading the model is timed apart: the pipeline reuses the loaded model.
    let load_started = Instant::now();
    let model = Arc::new(
        LocalEmbedder::load(&embedding.model_dir, embedding.batch_size)
            .map_err(|error| error.to_string())?,
    );
    let load_seconds = load_started.elapsed().as_secs_f64();

    let web = serve_files(&files).await?;
    let knowledge = KnowledgeSettings {
        embedding: embedding.clone(),
        allow_http: true,
        loopback_exceptions: vec![web],
        ..KnowledgeSettings::default()
    };
    let job_settings = JobSettings {
        poll_interval: Duration::from_millis(100),
        upkeep_interval: Duration::from_secs(3_600),
        knowledge: knowledge.clone(),
        ..JobSettings::default()
    };
    let worker_pool = pool.clone();
    let services = backend::jobs::Services {
        embedder: model.clone(),
        gateway: Arc::new(backend::providers::Gateway::offline_only(pool.clone())),
    };
    tokio::spawn(async move {
        if let Err(error) =
            server::workers::run_with_services(worker_pool, job_settings, services, pending()).await
        {
            eprintln!("pipeline bench: the workers stopped: {error:#}");
        }
    });

    let tenant = Uuid::now_v7();
    sqlx::query("INSERT INTO tenants (id, slug, name) VALUES ($1, 'bench', 'Pipeline bench')")
        .bind(tenant)
        .execute(&pool)
        .await
        .map_err(sql)?;
    let submitter = Submitter::Webhook {
        tenant_id: tenant,
        correlation_id: "pipeline-bench".into(),
    };

    let mut bytes_in = 0usize;
    let started = Instant::now();
    for path in &files {
        bytes_in += std::fs::metadata(path).map_or(0, |meta| meta.len() as usize);
        let url = format!("http://{web}/{}", file_name(path));
        store::submit(
            &pool,
            &knowledge,
            &submitter,
            Submission {
                source: NewSource::Url(url),
                title: Some(file_name(path)),
                authority: Authority::Official,
            },
        )
        .await
        .map_err(|error| format!("submitting {} failed: {error}", path.display()))?;
    }
    wait_for_review(&pool, files.len()).await?;
    let pipeline_seconds = started.elapsed().as_secs_f64();
    let pipeline_encoded = model.encoded_texts();

    let chunks: i64 = sqlx::query_scalar("SELECT count(*) FROM knowledge_chunks")
        .fetch_one(&pool)
        .await
        .map_err(sql)?;
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT text FROM (SELECT DISTINCT ON (content_sha256) content_sha256, text, ordinal, \
                document_id FROM knowledge_chunks ORDER BY content_sha256) unique_texts \
          ORDER BY document_id, ordinal",
    )
    .fetch_all(&pool)
    .await
    .map_err(sql)?;
    let characters: usize = texts.iter().map(|text| text.chars().count()).sum();

    let bare_started = Instant::now();
    for batch in texts.chunks(embedding.batch_size.max(1)) {
        let vectors = model
            .embed(batch)
            .await
            .map_err(|error| error.to_string())?;
        if vectors.len() != batch.len() {
            return Err(format!(
                "the model returned {} vectors for {} texts",
                vectors.len(),
                batch.len()
            ));
        }
    }
    let bare_seconds = bare_started.elapsed().as_secs_f64();

    println!(
        "corpus: {} ({} files, {bytes_in} bytes)",
        corpus.display(),
        files.len()
    );
    println!(
        "chunks: {chunks} stored, {} distinct texts, {:.0} characters on average; the pipeline \
         ran {pipeline_encoded} texts through the model",
        texts.len(),
        characters as f64 / texts.len().max(1) as f64
    );
    println!(
        "model load: {load_seconds:.1} s; batch size {}; cpu threads {}",
        embedding.batch_size,
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!(
        "pipeline (fetch to index): {pipeline_seconds:.1} s, {:.2} chunks/s",
        chunks as f64 / pipeline_seconds
    );
    println!(
        "bare model on the same distinct texts: {bare_seconds:.1} s, {:.2} texts/s",
        texts.len() as f64 / bare_seconds
    );
    println!(
        "pipeline rate / bare model rate: {:.2}",
        (chunks as f64 / pipeline_seconds) / (texts.len() as f64 / bare_seconds)
    );
    Ok(())
}

/// Waits until `documents` documents wait for review, failing on a dead job or a timeout.
async fn wait_for_review(pool: &PgPool, documents: usize) -> Result<(), String> {
    let deadline = Instant::now() + PIPELINE_TIMEOUT;
    loop {
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE status = 'in_review') AS ready, \
                    (SELECT count(*) FROM job_ledger WHERE status IN ('dead', 'discarded')) AS dead \
               FROM knowledge_documents",
        )
        .fetch_one(pool)
        .await
        .map_err(sql)?;
        let ready: i64 = row.get("ready");
        let dead: i64 = row.get("dead");
        if dead > 0 {
            let errors: Vec<String> = sqlx::query_scalar(
                "SELECT title || ': ' || coalesce(error, 'no error recorded') \
                   FROM knowledge_documents WHERE status <> 'in_review'",
            )
            .fetch_all(pool)
            .await
            .map_err(sql)?;
            return Err(format!("{dead} stage job(s) failed: {}", errors.join("; ")));
        }
        if ready as usize == documents {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {ready} of {documents} documents reached review in {} s",
                PIPELINE_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a web server on a free port of 127.0.0.1 that serves `files` by name, each with the
/// content type of its extension, and returns its address.
async fn serve_files(files: &[PathBuf]) -> Result<SocketAddr, String> {
    let mut served: HashMap<String, (&'static str, Vec<u8>)> = HashMap::new();
    for path in files {
        let bytes = std::fs::read(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let content_type = match path.extension().and_then(|ext| ext.to_str()) {
            Some("html" | "htm") => "text/html; charset=utf-8",
            Some("md") => "text/markdown; charset=utf-8",
            Some("pdf") => "application/pdf",
            Some("json") => "application/json",
            Some("xml") => "application/xml",
            _ => "text/plain; charset=utf-8",
        };
        served.insert(file_name(path), (content_type, bytes));
    }
    let served = Arc::new(served);
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::get(
            move |axum::extract::Path(name): axum::extract::Path<String>| {
                let served = Arc::clone(&served);
                async move {
                    match served.get(&name) {
                        Some((content_type, bytes)) => {
                            ([("content-type", *content_type)], bytes.clone()).into_response()
                        }
                        None => axum::http::StatusCode::NOT_FOUND.into_response(),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| format!("cannot open a port on 127.0.0.1: {error}"))?;
    let addr = listener.local_addr().map_err(|error| error.to_string())?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("pipeline bench: the file server stopped: {error}");
        }
    });
    Ok(addr)
}

/// Returns the file name of `path`, which names it in URLs and titles.
fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("document")
        .to_string()
}

fn corpus_dir() -> PathBuf {
    std::env::args()
        .skip(1)
        .find(|argument| !argument.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

fn corpus_files(corpus: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(corpus).map_err(|error| {
        format!(
            "cannot read the corpus folder {} ({error}); pass one after `--`",
            corpus.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file() && path.file_name().is_some_and(|name| name != "MANIFEST.md"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "the corpus folder {} holds no files",
            corpus.display()
        ));
    }
    Ok(files)
}

fn sql(error: sqlx::Error) -> String {
    format!("database error: {error}")
}
