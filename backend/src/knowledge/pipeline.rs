//! The ingestion pipeline: one job per stage (fetch, extract, sanitize, chunk, embed, index),
//! each finishing by queuing the next in the transaction that records its result.
//!
//! Every handler is idempotent in the same way: it acts only while the document is
//! `processing` at its own stage, and the final transaction re-checks that under a row lock
//! before advancing. A redelivered job therefore finds the document already past its stage and
//! does nothing. Embedding commits batch by batch and skips chunks that have a vector, so a
//! crash in the middle resumes where it stopped.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::chunk::{self, ChunkParams};
use super::embed::Embedder;
use super::store::{self, sha256_hex};
use super::{clean, extract, KnowledgeSettings, Stage};
use crate::jobs::runner::{JobContext, JobHandler, Registry};
use crate::jobs::{net_error, JobError};
use crate::net::GuardedClient;

/// A section of extracted text as stored on the document between stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSection {
    /// Headings above the text, outermost first.
    pub path: Vec<String>,
    /// The section's text.
    pub text: String,
}

/// Settings, outbound client and embedder shared by the stage handlers.
pub struct Pipeline {
    settings: KnowledgeSettings,
    client: GuardedClient,
    embedder: Arc<dyn Embedder>,
    chunk_params: ChunkParams,
}

impl Pipeline {
    /// Creates the pipeline from its settings and the embedder in use.
    pub fn new(settings: KnowledgeSettings, embedder: Arc<dyn Embedder>) -> Self {
        let client = GuardedClient::new(settings.fetch_policy());
        Self {
            settings,
            client,
            embedder,
            chunk_params: ChunkParams::default(),
        }
    }

    /// Registers one handler per automatic stage.
    pub fn register(self: &Arc<Self>, mut registry: Registry) -> Registry {
        for stage in Stage::ALL {
            if let Some(kind) = stage.job_kind() {
                registry = registry.register(
                    kind,
                    StageHandler {
                        stage,
                        pipeline: Arc::clone(self),
                    },
                );
            }
        }
        registry
    }
}

/// The handler of one stage.
struct StageHandler {
    stage: Stage,
    pipeline: Arc<Pipeline>,
}

/// The document facts a stage starts from.
struct Document {
    id: Uuid,
    tenant_id: Uuid,
    source_id: Uuid,
    url: Option<String>,
    file_name: Option<String>,
    content_type: Option<String>,
    sha256: Option<String>,
    sections: Option<Value>,
    flags: Value,
}

/// Result of a stage, written when it advances.
enum Outcome {
    /// Go on to the next stage after applying these column updates.
    Advance(Vec<(&'static str, Value)>),
    /// A refresh fetched the same bytes as the source's latest version: stop here.
    Unchanged,
}

#[async_trait::async_trait]
impl JobHandler for StageHandler {
    /// Idempotent: see the module documentation.
    async fn run(&self, job: &JobContext, args: Value) -> Result<(), JobError> {
        let document_id: Uuid = args
            .get("document_id")
            .and_then(Value::as_str)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                JobError::permanent(format!(
                    "{} job {} has no document_id",
                    job.kind, job.job_id
                ))
            })?;
        let tenant_id = job.tenant_id.ok_or_else(|| {
            JobError::permanent(format!("{} job {} has no tenant", job.kind, job.job_id))
        })?;
        let Some(document) = self.load(&job.pool, tenant_id, document_id).await? else {
            tracing::info!(%document_id, stage = self.stage.as_str(), "document already past this stage");
            return Ok(());
        };
        set_note(
            &job.pool,
            document_id,
            &format!("{} running", self.stage.as_str()),
        )
        .await?;

        let result = match self.stage {
            Stage::Fetch => self.fetch(job, &document).await,
            Stage::Extract => self.extract(&job.pool, &document).await,
            Stage::Sanitize => self.sanitize(&document),
            Stage::Chunk => self.chunk(&job.pool, &document).await,
            Stage::Embed => self.embed(job, &document).await,
            Stage::Index => self.index(&job.pool, &document).await,
            Stage::Review | Stage::Publish => Err(JobError::permanent(format!(
                "stage {} is done by reviewers, not by a job",
                self.stage.as_str()
            ))),
        };
        match result {
            Ok(outcome) => {
                self.finish(&job.pool, &document, outcome, &job.correlation_id)
                    .await
            }
            Err(error) => {
                let message = format!("{} failed: {}", self.stage.as_str(), error.message());
                record_error(&job.pool, document_id, &message).await?;
                Err(error)
            }
        }
    }
}

impl StageHandler {
    async fn load(
        &self,
        pool: &PgPool,
        tenant_id: Uuid,
        document_id: Uuid,
    ) -> Result<Option<Document>, JobError> {
        let row = sqlx::query(
            "SELECT d.id, d.tenant_id, d.source_id, s.url, d.file_name, d.content_type, d.sha256, \
                    d.sections, d.flags \
               FROM knowledge_documents d JOIN knowledge_sources s ON s.id = d.source_id \
              WHERE d.id = $1 AND d.tenant_id = $2 AND d.status = 'processing' AND d.stage = $3",
        )
        .bind(document_id)
        .bind(tenant_id)
        .bind(self.stage.as_str())
        .fetch_optional(pool)
        .await?;
        Ok(row.map(|row| Document {
            id: row.get("id"),
            tenant_id: row.get("tenant_id"),
            source_id: row.get("source_id"),
            url: row.get("url"),
            file_name: row.get("file_name"),
            content_type: row.get("content_type"),
            sha256: row.get("sha256"),
            sections: row.get("sections"),
            flags: row.get("flags"),
        }))
    }

    async fn fetch(&self, job: &JobContext, document: &Document) -> Result<Outcome, JobError> {
        let url = document.url.as_deref().ok_or_else(|| {
            JobError::permanent(format!("document {} has no URL to fetch", document.id))
        })?;
        let fetched = self.pipeline.client.fetch(url).await.map_err(net_error)?;
        let sha256 = sha256_hex(&fetched.bytes);

        let previous: Option<String> = sqlx::query_scalar(
            "SELECT sha256 FROM knowledge_documents \
              WHERE source_id = $1 AND id <> $2 AND sha256 IS NOT NULL \
                AND status IN ('in_review', 'published', 'processing') \
              ORDER BY version DESC LIMIT 1",
        )
        .bind(document.source_id)
        .bind(document.id)
        .fetch_optional(&job.pool)
        .await?;
        if previous.as_deref() == Some(sha256.as_str()) {
            return Ok(Outcome::Unchanged);
        }

        let mut conn = job.pool.acquire().await?;
        store::store_blob(&mut conn, document.tenant_id, &fetched.bytes).await?;
        Ok(Outcome::Advance(vec![
            ("sha256", json!(sha256)),
            ("byte_size", json!(fetched.bytes.len())),
            ("content_type", json!(fetched.content_type)),
        ]))
    }

    async fn extract(&self, pool: &PgPool, document: &Document) -> Result<Outcome, JobError> {
        let sha256 = document.sha256.as_deref().ok_or_else(|| {
            JobError::permanent(format!("document {} has no content", document.id))
        })?;
        let bytes: Vec<u8> = sqlx::query_scalar(
            "SELECT content FROM knowledge_blobs WHERE tenant_id = $1 AND sha256 = $2",
        )
        .bind(document.tenant_id)
        .bind(sha256)
        .fetch_one(pool)
        .await?;

        let content_type = document.content_type.clone();
        let file_name = document.file_name.clone();
        // Parsing is CPU work on untrusted bytes: keep it off the async threads.
        let extracted = tokio::task::spawn_blocking(move || {
            let format =
                extract::Format::detect(content_type.as_deref(), file_name.as_deref(), &bytes)?;
            extract::extract(format, &bytes).map(|extracted| (format, extracted))
        })
        .await
        .map_err(|error| JobError::permanent(format!("extraction stopped: {error}")))?;
        let (format, extracted) =
            extracted.map_err(|error| JobError::permanent(error.to_string()))?;

        let sections: Vec<StoredSection> = extracted
            .sections
            .iter()
            .map(|section| StoredSection {
                path: section.path.clone(),
                text: section.text.clone(),
            })
            .filter(|section| !section.text.trim().is_empty())
            .collect();
        if sections.is_empty() {
            return Err(JobError::permanent(format!(
                "document {} has no text to index; check that the file is not a scanned image or empty",
                document.id
            )));
        }
        let mut flags = flags_array(&document.flags);
        for fact in &extracted.facts {
            let mut flag = serde_json::to_value(fact).unwrap_or_else(|_| json!({}));
            flag["detail"] = json!(fact.to_string());
            flags.push(flag);
        }
        Ok(Outcome::Advance(vec![
            ("format", json!(format.as_str())),
            ("sections", json!(sections)),
            ("flags", Value::Array(flags)),
        ]))
    }

    fn sanitize(&self, document: &Document) -> Result<Outcome, JobError> {
        let sections = stored_sections(document)?;
        let mut flags = flags_array(&document.flags);
        let mut cleaned = Vec::with_capacity(sections.len());
        for section in sections {
            let result = clean::clean(&section.text);
            for flag in result.flags {
                flags.push(json!({
                    "kind": flag.kind,
                    "detail": flag.detail,
                    "section": section.path,
                }));
            }
            if !result.text.trim().is_empty() {
                cleaned.push(StoredSection {
                    path: section
                        .path
                        .iter()
                        .map(|heading| clean::clean(heading).text)
                        .collect(),
                    text: result.text,
                });
            }
        }
        if cleaned.is_empty() {
            return Err(JobError::permanent(format!(
                "document {} has no text left after sanitizing",
                document.id
            )));
        }
        Ok(Outcome::Advance(vec![
            ("sections", json!(cleaned)),
            ("flags", Value::Array(flags)),
        ]))
    }

    async fn chunk(&self, pool: &PgPool, document: &Document) -> Result<Outcome, JobError> {
        let sections = stored_sections(document)?;
        let chunks = chunk::chunk_sections(
            sections
                .iter()
                .map(|section| (section.path.as_slice(), section.text.as_str())),
            &self.pipeline.chunk_params,
        );
        let mut ids = Vec::with_capacity(chunks.len());
        let mut ordinals = Vec::with_capacity(chunks.len());
        let mut paths = Vec::with_capacity(chunks.len());
        let mut texts = Vec::with_capacity(chunks.len());
        let mut hashes = Vec::with_capacity(chunks.len());
        for (ordinal, chunk) in chunks.iter().enumerate() {
            ids.push(Uuid::now_v7());
            ordinals.push(ordinal as i32);
            // Postgres arrays of arrays must be rectangular, so paths travel as JSON.
            paths.push(json!(chunk.section_path));
            hashes.push(sha256_hex(chunk.text.as_bytes()));
            texts.push(chunk.text.clone());
        }

        let mut tx = pool.begin().await?;
        // A redelivered chunk job replaces what an earlier delivery wrote.
        sqlx::query("DELETE FROM knowledge_chunks WHERE document_id = $1")
            .bind(document.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO knowledge_chunks (id, tenant_id, document_id, ordinal, section_path, \
                                           section_heading, text, content_sha256) \
             SELECT id, $1, $2, ordinal, ARRAY(SELECT jsonb_array_elements_text(path)), \
                    array_to_string(ARRAY(SELECT jsonb_array_elements_text(path)), ' / '), text, hash \
               FROM unnest($3::uuid[], $4::int[], $5::jsonb[], $6::text[], $7::text[]) \
                    AS input(id, ordinal, path, text, hash)",
        )
        .bind(document.tenant_id)
        .bind(document.id)
        .bind(&ids)
        .bind(&ordinals)
        .bind(&paths)
        .bind(&texts)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Outcome::Advance(vec![]))
    }

    async fn embed(&self, job: &JobContext, document: &Document) -> Result<Outcome, JobError> {
        let embedder = &self.pipeline.embedder;
        let model = embedder.model_id().to_string();

        // Text already embedded with the same model, in any document of the tenant, is reused.
        sqlx::query(
            "UPDATE knowledge_chunks c SET embedding = known.embedding, embedding_model = known.embedding_model \
               FROM (SELECT DISTINCT ON (content_sha256) content_sha256, embedding, embedding_model \
                       FROM knowledge_chunks \
                      WHERE tenant_id = $1 AND embedding_model = $3 AND document_id <> $2) known \
              WHERE c.document_id = $2 AND c.embedding IS NULL \
                AND c.content_sha256 = known.content_sha256",
        )
        .bind(document.tenant_id)
        .bind(document.id)
        .bind(&model)
        .execute(&job.pool)
        .await?;

        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM knowledge_chunks WHERE document_id = $1")
                .bind(document.id)
                .fetch_one(&job.pool)
                .await?;
        let batch_size = self.pipeline.settings.embedding.batch_size.max(1) as i64;
        loop {
            let rows = sqlx::query(
                "SELECT id, text FROM knowledge_chunks \
                  WHERE document_id = $1 AND embedding IS NULL ORDER BY ordinal LIMIT $2",
            )
            .bind(document.id)
            .bind(batch_size)
            .fetch_all(&job.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            let ids: Vec<Uuid> = rows.iter().map(|row| row.get("id")).collect();
            let texts: Vec<String> = rows.iter().map(|row| row.get("text")).collect();
            let vectors = embedder
                .embed_for(
                    crate::ids::TenantId(document.tenant_id),
                    &job.correlation_id,
                    &texts,
                )
                .await
                .map_err(|error| JobError::from(error).context("embedding the chunks failed"))?;
            if vectors.len() != ids.len() {
                return Err(JobError::model_provider(format!(
                    "the embedder returned {} vectors for {} chunks",
                    vectors.len(),
                    ids.len()
                )));
            }
            let literals: Vec<String> = vectors
                .iter()
                .map(|vector| super::search::vector_literal(vector))
                .collect();
            sqlx::query(
                "UPDATE knowledge_chunks c SET embedding = input.embedding::vector, embedding_model = $3 \
                   FROM unnest($1::uuid[], $2::text[]) AS input(id, embedding) \
                  WHERE c.id = input.id",
            )
            .bind(&ids)
            .bind(&literals)
            .bind(&model)
            .execute(&job.pool)
            .await?;

            let remaining: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM knowledge_chunks WHERE document_id = $1 AND embedding IS NULL",
            )
            .bind(document.id)
            .fetch_one(&job.pool)
            .await?;
            let done = total - remaining;
            let band = (Stage::Index.starts_at() - Stage::Embed.starts_at()) as i64;
            let progress = Stage::Embed.starts_at() as i64 + band * done / total.max(1);
            let note = format!("embedded {done} of {total} chunks");
            set_progress(&job.pool, document.id, progress as i16, &note).await?;
            job.progress((done * 100 / total.max(1)) as u8, Some(&note))
                .await?;
        }
        Ok(Outcome::Advance(vec![]))
    }

    async fn index(&self, pool: &PgPool, document: &Document) -> Result<Outcome, JobError> {
        let row = sqlx::query(
            "SELECT count(*) AS chunks, count(*) FILTER (WHERE embedding IS NULL) AS missing \
               FROM knowledge_chunks WHERE document_id = $1",
        )
        .bind(document.id)
        .fetch_one(pool)
        .await?;
        let chunks: i64 = row.get("chunks");
        let missing: i64 = row.get("missing");
        if chunks == 0 || missing > 0 {
            return Err(JobError::permanent(format!(
                "document {} has {chunks} chunks of which {missing} have no vector; retry from the dead-letter page to re-run indexing",
                document.id
            )));
        }
        Ok(Outcome::Advance(vec![]))
    }

    /// Writes a stage's result and queues the next stage, if the document is still at this
    /// stage; a concurrent delivery that got here first leaves nothing to do.
    async fn finish(
        &self,
        pool: &PgPool,
        document: &Document,
        outcome: Outcome,
        correlation_id: &str,
    ) -> Result<(), JobError> {
        let mut tx = pool.begin().await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT stage FROM knowledge_documents WHERE id = $1 AND status = 'processing' FOR UPDATE",
        )
        .bind(document.id)
        .fetch_optional(&mut *tx)
        .await?;
        if current.as_deref() != Some(self.stage.as_str()) {
            return Ok(());
        }
        match outcome {
            Outcome::Unchanged => {
                sqlx::query(
                    "UPDATE knowledge_documents SET status = 'unchanged', progress = 100, \
                            progress_note = 'same content as the latest version', error = NULL, \
                            updated_at = now() WHERE id = $1",
                )
                .bind(document.id)
                .execute(&mut *tx)
                .await?;
                // Only the latest check of a source is worth showing, so a weekly refresh of an
                // unchanged page keeps one row instead of adding one every week.
                sqlx::query(
                    "DELETE FROM knowledge_documents \
                      WHERE source_id = $1 AND status = 'unchanged' AND id <> $2",
                )
                .bind(document.source_id)
                .bind(document.id)
                .execute(&mut *tx)
                .await?;
            }
            Outcome::Advance(updates) => {
                for (column, value) in updates {
                    write_column(&mut tx, document.id, column, value).await?;
                }
                let next = next_stage(self.stage);
                let status = if next == Stage::Review {
                    "in_review"
                } else {
                    "processing"
                };
                sqlx::query(
                    "UPDATE knowledge_documents SET stage = $2, status = $3, progress = $4, \
                            progress_note = NULL, error = NULL, updated_at = now() WHERE id = $1",
                )
                .bind(document.id)
                .bind(next.as_str())
                .bind(status)
                .bind(next.starts_at())
                .execute(&mut *tx)
                .await?;
                if next.job_kind().is_some() {
                    store::queue_stage(
                        &mut tx,
                        document.tenant_id,
                        document.id,
                        next,
                        correlation_id,
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

fn next_stage(stage: Stage) -> Stage {
    let position = Stage::ALL
        .iter()
        .position(|candidate| *candidate == stage)
        .unwrap_or(0);
    Stage::ALL
        .get(position + 1)
        .copied()
        .unwrap_or(Stage::Publish)
}

/// Sets one of the columns a stage may write; the names are fixed in this module.
async fn write_column(
    conn: &mut PgConnection,
    document_id: Uuid,
    column: &'static str,
    value: Value,
) -> Result<(), sqlx::Error> {
    let sql = match column {
        "sha256" => "UPDATE knowledge_documents SET sha256 = $2 #>> '{}' WHERE id = $1",
        "content_type" => "UPDATE knowledge_documents SET content_type = $2 #>> '{}' WHERE id = $1",
        "format" => "UPDATE knowledge_documents SET format = $2 #>> '{}' WHERE id = $1",
        "byte_size" => {
            "UPDATE knowledge_documents SET byte_size = ($2 #>> '{}')::bigint WHERE id = $1"
        }
        "sections" => "UPDATE knowledge_documents SET sections = $2 WHERE id = $1",
        "flags" => "UPDATE knowledge_documents SET flags = $2 WHERE id = $1",
        other => unreachable!("stage wrote unknown column {other}"),
    };
    sqlx::query(sql)
        .bind(document_id)
        .bind(value)
        .execute(conn)
        .await?;
    Ok(())
}

fn stored_sections(document: &Document) -> Result<Vec<StoredSection>, JobError> {
    let value = document.sections.clone().ok_or_else(|| {
        JobError::permanent(format!("document {} has no extracted text", document.id))
    })?;
    serde_json::from_value(value).map_err(|error| {
        JobError::permanent(format!(
            "document {} has unreadable sections: {error}",
            document.id
        ))
    })
}

fn flags_array(flags: &Value) -> Vec<Value> {
    flags.as_array().cloned().unwrap_or_default()
}

async fn set_note(pool: &PgPool, document_id: Uuid, note: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE knowledge_documents SET progress_note = $2, updated_at = now() WHERE id = $1",
    )
    .bind(document_id)
    .bind(note)
    .execute(pool)
    .await?;
    Ok(())
}

async fn set_progress(
    pool: &PgPool,
    document_id: Uuid,
    progress: i16,
    note: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE knowledge_documents SET progress = $2, progress_note = $3, updated_at = now() WHERE id = $1",
    )
    .bind(document_id)
    .bind(progress)
    .bind(note)
    .execute(pool)
    .await?;
    Ok(())
}

async fn record_error(pool: &PgPool, document_id: Uuid, message: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE knowledge_documents SET error = $2, updated_at = now() WHERE id = $1")
        .bind(document_id)
        .bind(message)
        .execute(pool)
        .await?;
    Ok(())
}
