//! Hybrid search over published chunks: nearest vectors (pgvector HNSW) and full-text matches
//! (`tsvector`), fused by reciprocal rank and weighted by source authority and freshness.

use serde::Serialize;
use sqlx::{PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::embed::Embedder;
use super::Authority;

/// Results returned when the caller does not say how many.
pub const DEFAULT_K: usize = 8;

/// Most results one search returns.
pub const MAX_K: usize = 50;

/// The constant of reciprocal rank fusion: a hit at rank r scores 1 / (RRF_K + r). 60 is the
/// value of the original RRF paper (Cormack, Clarke and Büttcher, SIGIR 2009).
pub const RRF_K: f64 = 60.0;

/// One search result, with what a citation needs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    /// The chunk's id, which citations name.
    pub chunk_id: Uuid,
    /// The document version the chunk belongs to.
    pub document_id: Uuid,
    /// The document's title.
    pub document_title: String,
    /// The source URL, for URL and webhook sources.
    pub source_url: Option<String>,
    /// official, high, medium or low.
    pub authority: String,
    /// Headings above the chunk, outermost first.
    pub section_path: Vec<String>,
    /// The chunk's text.
    pub text: String,
    /// Fused score after authority and freshness weights; higher is better.
    pub score: f64,
    /// Cosine similarity between the query and the chunk, in [-1, 1]; 0 for a chunk embedded by
    /// another model than the query.
    pub similarity: f64,
    /// Rank among the nearest vectors, from 1; none when outside the candidates.
    pub vector_rank: Option<i64>,
    /// Rank among full-text matches, from 1; none when the words did not match.
    pub text_rank: Option<i64>,
    /// When the document was published.
    #[serde(with = "time::serde::rfc3339::option")]
    pub published_at: Option<OffsetDateTime>,
    /// Whether ingestion flagged the document (hidden text or injection-like instructions);
    /// reviewers published it anyway, and prompts pass the flag on to the model.
    pub flagged: bool,
}

/// Returns the freshness weight of a document published `age_days` ago, the same steps the
/// consensus uses: under 30 days 1.0, 180 days 0.8, 1 year 0.6, 3 years 0.4, older 0.2.
pub fn freshness(age_days: f64) -> f64 {
    match age_days {
        d if d < 30.0 => 1.0,
        d if d < 180.0 => 0.8,
        d if d < 365.0 => 0.6,
        d if d < 3.0 * 365.0 => 0.4,
        _ => 0.2,
    }
}

/// Returns the weight that multiplies a hit's fused rank score. Authority and freshness break
/// near-ties without letting a weak match of an official source beat a strong match: the
/// factors range over [0.65, 1.0] and [0.8, 1.0].
pub fn weight(authority: Authority, age_days: f64) -> f64 {
    (0.5 + 0.5 * authority.weight()) * (0.75 + 0.25 * freshness(age_days))
}

/// Formats a vector as pgvector's text input, `[x,y,...]`.
pub fn vector_literal(vector: &[f32]) -> String {
    let mut text = String::with_capacity(vector.len() * 10 + 2);
    text.push('[');
    for (index, value) in vector.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(&value.to_string());
    }
    text.push(']');
    text
}

/// Runs a hybrid search for `query` (whose embedding is `query_vector`, made by `model`) over
/// the published chunks of `tenant_id` and returns the best `k`. Only vectors of the same model
/// take part in the vector half: distances between two models' vectors mean nothing, so after
/// a change of embedding backend older chunks are found by their words until re-ingested.
pub async fn search(
    pool: &PgPool,
    tenant_id: Uuid,
    query: &str,
    query_vector: &[f32],
    model: &str,
    k: usize,
) -> Result<Vec<SearchHit>, sqlx::Error> {
    let k = k.clamp(1, MAX_K);
    // Each list contributes this many candidates to the fusion; deeper lists let a chunk that
    // ranks well in one list but poorly in the other still be found.
    let candidates = (k * 5).max(40) as i64;

    let mut tx = pool.begin().await?;
    tune_hnsw_scan(&mut tx, candidates).await?;
    let rows = sqlx::query(
        "WITH query AS ( \
             SELECT $2::vector AS embedding, \
                    replace(plainto_tsquery('english', $3)::text, '&', '|')::tsquery AS words \
         ), vector_hits AS ( \
             SELECT id, row_number() OVER (ORDER BY distance) AS rank FROM ( \
                 SELECT c.id, c.embedding <=> q.embedding AS distance \
                   FROM knowledge_chunks c, query q \
                  WHERE c.searchable AND c.tenant_id = $1 AND c.embedding_model = $6 \
                  ORDER BY c.embedding <=> q.embedding LIMIT $4) nearest \
         ), text_hits AS ( \
             SELECT id, row_number() OVER (ORDER BY text_score DESC, id) AS rank FROM ( \
                 SELECT c.id, ts_rank_cd(c.tsv, q.words, 32) AS text_score \
                   FROM knowledge_chunks c, query q \
                  WHERE c.searchable AND c.tenant_id = $1 AND c.tsv @@ q.words \
                  ORDER BY text_score DESC, c.id LIMIT $4) matched \
         ) \
         SELECT c.id AS chunk_id, c.document_id, d.title, s.url, s.authority, c.section_path, \
                c.text, d.published_at, jsonb_array_length(d.flags) > 0 AS flagged, \
                CASE WHEN c.embedding_model = $6 THEN 1 - (c.embedding <=> q.embedding) \
                     ELSE 0 END::float8 AS similarity, \
                v.rank AS vector_rank, t.rank AS text_rank, \
                (coalesce(1.0 / ($5 + v.rank), 0) + coalesce(1.0 / ($5 + t.rank), 0))::float8 AS rrf, \
                (extract(epoch FROM now() - coalesce(d.published_at, d.created_at)) / 86400.0)::float8 \
                    AS age_days \
           FROM vector_hits v FULL JOIN text_hits t USING (id) \
           JOIN knowledge_chunks c ON c.id = coalesce(v.id, t.id) \
           JOIN knowledge_documents d ON d.id = c.document_id \
           JOIN knowledge_sources s ON s.id = d.source_id, query q",
    )
    .bind(tenant_id)
    .bind(vector_literal(query_vector))
    .bind(query)
    .bind(candidates)
    .bind(RRF_K)
    .bind(model)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;

    let mut hits: Vec<SearchHit> = rows
        .iter()
        .map(|row| {
            let authority_name: String = row.get("authority");
            let authority = Authority::parse(&authority_name).unwrap_or(Authority::Low);
            let rrf: f64 = row.get("rrf");
            let age_days: f64 = row.get("age_days");
            SearchHit {
                chunk_id: row.get("chunk_id"),
                document_id: row.get("document_id"),
                document_title: row.get("title"),
                source_url: row.get("url"),
                authority: authority_name,
                section_path: row.get("section_path"),
                text: row.get("text"),
                score: rrf * weight(authority, age_days),
                similarity: row.get("similarity"),
                vector_rank: row.get("vector_rank"),
                text_rank: row.get("text_rank"),
                published_at: row.get("published_at"),
                flagged: row.get("flagged"),
            }
        })
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    hits.truncate(k);
    Ok(hits)
}

/// Smallest HNSW candidate list a search scans (`hnsw.ef_search`, 40 by pgvector's default);
/// BENCHMARKS.md gives the recall it buys.
const MIN_EF_SEARCH: i64 = 100;

/// Sets the HNSW scan of this transaction to look at `candidates` rows at least. It also turns
/// on pgvector 0.8's iterative scan, which keeps scanning while the tenant filter removes rows,
/// so that other tenants' chunks do not crowd a tenant's own out of its results. The scan still
/// stops at `hnsw.max_scan_tuples` (20,000 by pgvector's default).
async fn tune_hnsw_scan(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    candidates: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('hnsw.ef_search', $1, true), \
                set_config('hnsw.iterative_scan', 'relaxed_order', true)",
    )
    .bind(candidates.max(MIN_EF_SEARCH).to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Returns the ids of the `k` published chunks nearest to `query_vector`, through the HNSW
/// index or, with `exact`, by scanning every chunk; benchmarks compare the two for recall.
pub async fn nearest_chunk_ids(
    pool: &PgPool,
    tenant_id: Uuid,
    query_vector: &[f32],
    k: usize,
    exact: bool,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if exact {
        sqlx::query("SELECT set_config('enable_indexscan', 'off', true)")
            .execute(&mut *tx)
            .await?;
    } else {
        tune_hnsw_scan(&mut tx, (k * 5).max(40) as i64).await?;
    }
    let ids = sqlx::query_scalar(
        "SELECT id FROM knowledge_chunks WHERE searchable AND tenant_id = $1 \
          ORDER BY embedding <=> $2::vector LIMIT $3",
    )
    .bind(tenant_id)
    .bind(vector_literal(query_vector))
    .bind(k as i64)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids)
}

/// Embeds `query` with `embedder` for the tenant and runs [`search`]; the error is what the
/// API returns.
pub async fn search_text(
    pool: &PgPool,
    embedder: &dyn Embedder,
    tenant_id: Uuid,
    correlation_id: &str,
    query: &str,
    k: usize,
) -> Result<Vec<SearchHit>, crate::http::ApiError> {
    let vectors = embedder
        .embed_for(
            crate::ids::TenantId(tenant_id),
            correlation_id,
            &[query.to_string()],
        )
        .await
        .map_err(|error| anyhow::anyhow!("embedding the search query failed: {error}"))?;
    let vector = vectors
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the embedder returned no vector for the query"))?;
    Ok(search(pool, tenant_id, query, &vector, embedder.model_id(), k).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_steps() {
        assert_eq!(freshness(0.0), 1.0);
        assert_eq!(freshness(29.9), 1.0);
        assert_eq!(freshness(30.0), 0.8);
        assert_eq!(freshness(200.0), 0.6);
        assert_eq!(freshness(400.0), 0.4);
        assert_eq!(freshness(2000.0), 0.2);
    }

    #[test]
    fn weight_orders_authority() {
        assert!(weight(Authority::Official, 1.0) > weight(Authority::High, 1.0));
        assert!(weight(Authority::Medium, 1.0) > weight(Authority::Low, 1.0));
        assert_eq!(weight(Authority::Official, 1.0), 1.0);
        assert!((weight(Authority::Low, 5000.0) - 0.65 * 0.8).abs() < 1e-9);
    }

    #[test]
    fn vector_literal_format() {
        assert_eq!(vector_literal(&[1.0, -0.5, 0.25]), "[1,-0.5,0.25]");
        assert_eq!(vector_literal(&[]), "[]");
    }
}
