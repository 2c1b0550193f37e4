//! Latency and recall of knowledge search at 10,000 and 100,000 chunks.
//!
//! Usage: cargo bench -p backend --bench search [-- SIZE ...]
//!
//! Needs DATABASE_URL, as the tests do: the bench creates its own `siteline_test_*` database,
//! which `scripts/local-pg.sh drop-test-dbs` removes. It fills one tenant with SIZE published
//! chunks (default 10000 and 100000, each size adding to the one before), rebuilds the HNSW and
//! full-text indexes as the migration defines them, and then, for SEARCH_BENCH_QUERIES queries
//! (default 200):
//!
//! - recall@8: the share of the exact 8 nearest chunks (a scan of every chunk) that the HNSW
//!   query of [`nearest_chunk_ids`] returns;
//! - p50 and p95 of that HNSW query, of the exact scan, and of the whole hybrid [`search`]
//!   (vector and text lists fused, authority and freshness applied).
//!
//! `cargo test` runs this target too, without `--bench`: then it only loads 500 chunks and runs
//! 10 queries, to check that the bench still works.
//!
//! The vectors are synthetic, because embedding 100,000 texts with the local model would take
//! hours on a small machine: unit vectors drawn around 200 random centres in 384 dimensions, so
//! that neighbourhoods are crowded as they are for real text. Chunk texts are 60 words drawn
//! from the words of the sample corpus, or from a made-up vocabulary when the corpus is absent.
//! Each query is 3 such words and a vector near a random chunk.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use backend::knowledge::embed::EMBEDDING_DIMENSIONS;
use backend::knowledge::search::{nearest_chunk_ids, search, vector_literal};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use uuid::Uuid;

/// Neighbours compared for recall, the number of chunks a recommendation retrieves.
const K: usize = 8;

/// Centres of the synthetic vector clusters.
const CLUSTERS: usize = 200;

/// Spread of a chunk around its centre, per dimension; with unit-scale centres this puts a
/// chunk's cosine to its centre near 0.8.
const SPREAD: f64 = 0.04;

/// Spread of a query around the chunk it was drawn from.
const QUERY_SPREAD: f64 = 0.02;

/// Chunks of the quick run under `cargo test`.
const SMOKE_CHUNKS: usize = 500;

/// Queries of the quick run under `cargo test`.
const SMOKE_QUERIES: usize = 10;

/// Rows per INSERT while loading.
const LOAD_BATCH: usize = 1_000;

/// Words per synthetic chunk text.
const CHUNK_WORDS: usize = 60;

/// The indexes the bench drops while loading and rebuilds afterwards, as the migration made
/// them: building once is much faster than growing them row by row.
const REBUILT_INDEXES: [&str; 2] = ["knowledge_chunks_embedding_idx", "knowledge_chunks_tsv_idx"];

fn main() {
    if let Err(message) = run() {
        eprintln!("search bench: error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let sizes = sizes()?;
    let queries = env_number(
        "SEARCH_BENCH_QUERIES",
        if bench_mode() { 200 } else { SMOKE_QUERIES },
    )?;
    let runtime = tokio::runtime::Runtime::new().map_err(|error| error.to_string())?;
    runtime.block_on(bench(&sizes, queries))
}

async fn bench(sizes: &[usize], query_count: usize) -> Result<(), String> {
    if std::env::var_os("DATABASE_URL").is_none() {
        return Err(
            "DATABASE_URL is unset: point it at PostgreSQL with pgvector, as for the \
                    tests (`scripts/local-pg.sh url` prints the project-local one)"
                .into(),
        );
    }
    let pool = backend::testing::fresh_pool().await;
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .map_err(sql)?;
    let pgvector: String =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            .fetch_one(&pool)
            .await
            .map_err(sql)?;
    let mut rng = StdRng::seed_from_u64(20_261_205);
    let words = vocabulary();
    let centres: Vec<Vec<f64>> = (0..CLUSTERS)
        .map(|_| unit(&gaussian_vector(&mut rng, 1.0)))
        .collect();
    let (tenant, document) = create_document(&pool).await?;

    println!("database: {database} (pgvector {pgvector})");
    println!(
        "queries per size: {query_count}; k = {K}; vocabulary: {} words",
        words.len()
    );
    println!(
        "{:>8} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "chunks",
        "load s",
        "index s",
        "recall@8",
        "hnsw p50",
        "hnsw p95",
        "exact p50",
        "exact p95",
        "hybrid p50",
    );

    let mut loaded = 0;
    // The chunks the queries are drawn near, kept so that every size runs comparable queries.
    let mut samples: Vec<(Vec<f64>, String)> = Vec::new();
    for &size in sizes {
        let index_definitions = drop_indexes(&pool).await?;
        let load_started = Instant::now();
        while loaded < size {
            let rows = LOAD_BATCH.min(size - loaded);
            let batch: Vec<(Vec<f64>, String)> = (0..rows)
                .map(|_| {
                    let centre = &centres[rng.random_range(0..CLUSTERS)];
                    let vector = unit(&add(centre, &gaussian_vector(&mut rng, SPREAD)));
                    (vector, sentence(&mut rng, &words, CHUNK_WORDS))
                })
                .collect();
            if samples.len() < query_count {
                samples.extend(batch.iter().take(query_count - samples.len()).cloned());
            }
            insert_chunks(&pool, tenant, document, loaded, &batch).await?;
            loaded += rows;
        }
        let load_seconds = load_started.elapsed().as_secs_f64();
        let index_started = Instant::now();
        rebuild_indexes(&pool, &index_definitions).await?;
        let index_seconds = index_started.elapsed().as_secs_f64();

        let mut query_rng = StdRng::seed_from_u64(size as u64);
        let mut hnsw = Vec::new();
        let mut exact = Vec::new();
        let mut hybrid = Vec::new();
        let mut found = 0usize;
        for _ in 0..query_count {
            let (near, text) = &samples[query_rng.random_range(0..samples.len())];
            let vector: Vec<f32> = unit(&add(near, &gaussian_vector(&mut query_rng, QUERY_SPREAD)))
                .iter()
                .map(|&value| value as f32)
                .collect();
            let query_text = text.split(' ').take(3).collect::<Vec<_>>().join(" ");

            let started = Instant::now();
            let approximate = nearest_chunk_ids(&pool, tenant, &vector, K, false)
                .await
                .map_err(sql)?;
            hnsw.push(started.elapsed());

            let started = Instant::now();
            let truth = nearest_chunk_ids(&pool, tenant, &vector, K, true)
                .await
                .map_err(sql)?;
            exact.push(started.elapsed());

            let started = Instant::now();
            let hits = search(&pool, tenant, &query_text, &vector, "synthetic", K)
                .await
                .map_err(sql)?;
            hybrid.push(started.elapsed());
            if hits.is_empty() {
                return Err(format!("hybrid search for {query_text:?} found nothing"));
            }

            let truth: HashSet<Uuid> = truth.into_iter().collect();
            found += approximate.iter().filter(|id| truth.contains(id)).count();
        }
        let recall = found as f64 / (query_count * K) as f64;
        println!(
            "{:>8} {:>9.1} {:>9.1} {:>10.3} {:>10} {:>10} {:>10} {:>10} {:>10}  hybrid p95 {}",
            size,
            load_seconds,
            index_seconds,
            recall,
            millis(percentile(&mut hnsw, 0.50)),
            millis(percentile(&mut hnsw, 0.95)),
            millis(percentile(&mut exact, 0.50)),
            millis(percentile(&mut exact, 0.95)),
            millis(percentile(&mut hybrid, 0.50)),
            millis(percentile(&mut hybrid, 0.95)),
        );
    }
    Ok(())
}

/// Reads the sizes from the command line, ascending (cargo bench also passes `--bench`).
fn sizes() -> Result<Vec<usize>, String> {
    let mut sizes = Vec::new();
    for argument in std::env::args().skip(1).filter(|arg| !arg.starts_with('-')) {
        let size: usize = argument.replace('_', "").parse().map_err(|_| {
            format!("size {argument:?} is not a whole number of chunks; pass e.g. 10000")
        })?;
        if size == 0 {
            return Err("size 0 leaves nothing to search; pass at least 1".into());
        }
        sizes.push(size);
    }
    if sizes.is_empty() {
        sizes = if bench_mode() {
            vec![10_000, 100_000]
        } else {
            vec![SMOKE_CHUNKS]
        };
    }
    sizes.sort_unstable();
    sizes.dedup();
    Ok(sizes)
}

/// Tells `cargo bench`, which passes `--bench`, from `cargo test`, which runs bench targets
/// once without it and only needs to see that the bench still works.
fn bench_mode() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn env_number(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value
            .parse()
            .ok()
            .filter(|&number| number > 0)
            .ok_or_else(|| format!("{name}={value:?} is not a positive whole number")),
        _ => Ok(default),
    }
}

/// Creates one tenant with one published document of one source, which every chunk belongs to.
async fn create_document(pool: &PgPool) -> Result<(Uuid, Uuid), String> {
    let tenant = Uuid::now_v7();
    let source = Uuid::now_v7();
    let document = Uuid::now_v7();
    sqlx::query("INSERT INTO tenants (id, slug, name) VALUES ($1, 'bench', 'Search bench')")
        .bind(tenant)
        .execute(pool)
        .await
        .map_err(sql)?;
    sqlx::query(
        "INSERT INTO knowledge_sources (id, tenant_id, kind, title, authority) \
         VALUES ($1, $2, 'upload', 'Synthetic manual', 'official')",
    )
    .bind(source)
    .bind(tenant)
    .execute(pool)
    .await
    .map_err(sql)?;
    sqlx::query(
        "INSERT INTO knowledge_documents \
             (id, tenant_id, source_id, version, status, stage, progress, title, \
              correlation_id, published_at) \
         VALUES ($1, $2, $3, 1, 'published', 'publish', 100, 'Synthetic manual', \
                 'search-bench', now())",
    )
    .bind(document)
    .bind(tenant)
    .bind(source)
    .execute(pool)
    .await
    .map_err(sql)?;
    Ok((tenant, document))
}

/// Drops the indexes of [`REBUILT_INDEXES`] and returns their definitions.
async fn drop_indexes(pool: &PgPool) -> Result<Vec<String>, String> {
    let mut definitions = Vec::new();
    for name in REBUILT_INDEXES {
        let definition: String =
            sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE indexname = $1")
                .bind(name)
                .fetch_one(pool)
                .await
                .map_err(|error| format!("index {name} is missing ({error})"))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
            .execute(pool)
            .await
            .map_err(sql)?;
        definitions.push(definition);
    }
    Ok(definitions)
}

/// Recreates the indexes from their definitions, with memory enough to build the HNSW graph
/// in one pass, and refreshes the planner statistics.
async fn rebuild_indexes(pool: &PgPool, definitions: &[String]) -> Result<(), String> {
    let mut connection = pool.acquire().await.map_err(sql)?;
    sqlx::raw_sql("SET maintenance_work_mem = '2GB'")
        .execute(&mut *connection)
        .await
        .map_err(sql)?;
    for definition in definitions {
        sqlx::raw_sql(sqlx::AssertSqlSafe(definition.clone()))
            .execute(&mut *connection)
            .await
            .map_err(sql)?;
    }
    sqlx::raw_sql("RESET maintenance_work_mem; ANALYZE knowledge_chunks")
        .execute(&mut *connection)
        .await
        .map_err(sql)?;
    Ok(())
}

async fn insert_chunks(
    pool: &PgPool,
    tenant: Uuid,
    document: Uuid,
    first_ordinal: usize,
    batch: &[(Vec<f64>, String)],
) -> Result<(), String> {
    let ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
    let ordinals: Vec<i32> = (first_ordinal..first_ordinal + batch.len())
        .map(|ordinal| ordinal as i32)
        .collect();
    let texts: Vec<String> = batch.iter().map(|(_, text)| text.clone()).collect();
    let vectors: Vec<String> = batch
        .iter()
        .map(|(vector, _)| {
            let single: Vec<f32> = vector.iter().map(|&value| value as f32).collect();
            vector_literal(&single)
        })
        .collect();
    sqlx::query(
        "INSERT INTO knowledge_chunks \
             (id, tenant_id, document_id, ordinal, section_path, section_heading, text, \
              content_sha256, embedding, embedding_model, searchable) \
         SELECT id, $1, $2, ordinal, ARRAY['Synthetic'], 'Synthetic', text, md5(text), \
                embedding::vector, 'synthetic', true \
           FROM unnest($3::uuid[], $4::int[], $5::text[], $6::text[]) \
                AS rows (id, ordinal, text, embedding)",
    )
    .bind(tenant)
    .bind(document)
    .bind(&ids)
    .bind(&ordinals)
    .bind(&texts)
    .bind(&vectors)
    .execute(pool)
    .await
    .map_err(sql)?;
    Ok(())
}

/// Lowercase words of four letters or more from the sample corpus, or a made-up vocabulary.
fn vocabulary() -> Vec<String> {
    let corpus = std::env::var_os("SEARCH_BENCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let mut words = HashSet::new();
    if let Ok(entries) = std::fs::read_dir(&corpus) {
        for entry in entries.flatten() {
            let path = entry.path();
            let text_like = matches!(
                path.extension().and_then(|extension| extension.to_str()),
                Some("txt" | "md")
            );
            if !text_like {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                for word in text.split(|c: char| !c.is_ascii_alphabetic()) {
                    if word.len() >= 4 {
                        words.insert(word.to_ascii_lowercase());
                    }
                }
            }
        }
    }
    let mut words: Vec<String> = words.into_iter().collect();
    if words.len() < 500 {
        words = (0..5_000).map(|index| format!("term{index}")).collect();
    }
    words.sort_unstable();
    words
}

fn sentence(rng: &mut StdRng, words: &[String], count: usize) -> String {
    (0..count)
        .map(|_| words[rng.random_range(0..words.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Draws a vector of independent normal values with standard deviation `sigma` (Box-Muller).
fn gaussian_vector(rng: &mut StdRng, sigma: f64) -> Vec<f64> {
    (0..EMBEDDING_DIMENSIONS)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random();
            sigma * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn unit(vector: &[f64]) -> Vec<f64> {
    let norm = vector.iter().map(|value| value * value).sum::<f64>().sqrt();
    vector.iter().map(|value| value / norm).collect()
}

fn percentile(samples: &mut [Duration], share: f64) -> Duration {
    samples.sort_unstable();
    let index = ((samples.len() as f64 * share).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[index]
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1_000.0)
}

fn sql(error: sqlx::Error) -> String {
    format!("database error: {error}")
}
