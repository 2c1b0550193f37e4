//! Submitting documents (URL, upload, webhook), reading them back, and retiring them.

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Authority, KnowledgeSettings, Stage};
use crate::audit::{self, Actor, AuditEvent};
use crate::changes::store::Caller;
use crate::http::ApiError;
use crate::jobs::ledger::{self, JobStatus, NewJob};

/// Maximum document title length, in characters.
pub const MAX_TITLE_CHARS: usize = 300;

/// Longest uploaded file name, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// The submitter of a document.
#[derive(Debug, Clone)]
pub enum Submitter<'a> {
    /// A signed-in user, through the page or the API.
    User(&'a Caller),
    /// A signed webhook delivery for `tenant_id`.
    Webhook {
        /// The tenant the delivery names.
        tenant_id: Uuid,
        /// The delivery's correlation id.
        correlation_id: String,
    },
    /// The periodic refresh of a URL source.
    Refresh {
        /// The source's tenant.
        tenant_id: Uuid,
        /// The refresh run's correlation id.
        correlation_id: String,
    },
}

impl Submitter<'_> {
    fn tenant(&self) -> Uuid {
        match self {
            Self::User(caller) => caller.principal.tenant_id.0,
            Self::Webhook { tenant_id, .. } | Self::Refresh { tenant_id, .. } => *tenant_id,
        }
    }

    fn user(&self) -> Option<Uuid> {
        match self {
            Self::User(caller) => Some(caller.principal.user_id.0),
            _ => None,
        }
    }

    fn correlation_id(&self) -> &str {
        match self {
            Self::User(caller) => &caller.correlation_id,
            Self::Webhook { correlation_id, .. } | Self::Refresh { correlation_id, .. } => {
                correlation_id
            }
        }
    }

    fn audit(&self, action: &str, document_id: Uuid, detail: Value) -> AuditEvent {
        match self {
            Self::User(caller) => {
                caller.audit_event("knowledge_document", action, document_id, detail)
            }
            Self::Webhook {
                tenant_id,
                correlation_id,
            }
            | Self::Refresh {
                tenant_id,
                correlation_id,
            } => AuditEvent::new(
                *tenant_id,
                Actor::System,
                action,
                "knowledge_document",
                document_id.to_string(),
                detail,
            )
            .client(None, None, Some(correlation_id.clone())),
        }
    }
}

/// The content source of a new document.
#[derive(Debug, Clone)]
pub enum NewSource {
    /// A URL the fetch stage downloads.
    Url(String),
    /// Uploaded bytes and the client's file name, shown but never used as a path.
    Upload {
        /// The file name as the client sent it, already checked by [`check_file_name`].
        file_name: String,
        /// The file's content.
        bytes: Vec<u8>,
    },
}

/// A submission: the source and how it is labelled.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The content source.
    pub source: NewSource,
    /// The title shown to reviewers and in citations; derived from the source when `None`.
    pub title: Option<String>,
    /// How much the source is trusted.
    pub authority: Authority,
}

/// The outcome of a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Submitted {
    /// The new document version.
    pub document_id: Uuid,
    /// Its source, shared by later versions.
    pub source_id: Uuid,
    /// The job running its first stage.
    pub job_id: Uuid,
}

/// Checks an uploaded file name. Names are display labels only, but a name that looks like a
/// path is refused outright so that no later code can be tempted to use it as one.
pub fn check_file_name(name: &str) -> Result<(), ApiError> {
    let bad = |fix: &str| {
        Err(ApiError::invalid(
            "file_name",
            name,
            format!("file name {name:?} is not accepted: {fix}"),
        ))
    };
    if name.is_empty() {
        return bad("send a file name such as manual.pdf");
    }
    if name.len() > MAX_FILE_NAME_BYTES {
        return bad("use a name of at most 255 bytes");
    }
    if name.contains(['/', '\\']) || name.split('.').all(str::is_empty) || name.starts_with("..") {
        return bad("send the bare file name, without folders or '..'");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("remove control characters from the name");
    }
    Ok(())
}

/// Checks a submitted URL's shape. Whether its host may be reached is decided by the outbound
/// guard when the fetch job runs, because DNS answers change between now and then.
pub fn check_url(raw: &str, settings: &KnowledgeSettings) -> Result<(), ApiError> {
    let url = url::Url::parse(raw.trim()).map_err(|error| {
        ApiError::invalid("url", raw, format!("url {raw:?} is not a valid absolute URL ({error}); send e.g. https://example.com/manual.pdf"))
    })?;
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => settings.allow_http,
        _ => false,
    };
    if !scheme_ok {
        let accepted = if settings.allow_http {
            "http or https"
        } else {
            "https"
        };
        return Err(ApiError::invalid(
            "url",
            raw,
            format!(
                "url scheme {:?} is not accepted; use {accepted}",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid(
            "url",
            raw,
            "url has no host; send e.g. https://example.com/manual.pdf",
        ));
    }
    if raw.len() > 2048 {
        return Err(ApiError::invalid(
            "url",
            raw,
            "url is longer than 2048 bytes",
        ));
    }
    Ok(())
}

/// Checks a title and returns it trimmed.
pub fn check_title(title: &str) -> Result<String, ApiError> {
    let trimmed = title.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::invalid(
            "title",
            title,
            "title must be 1 to 300 characters",
        ));
    }
    Ok(trimmed.to_string())
}

/// Returns the lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Stores a submission as source and first document version and queues its first stage, all
/// in one transaction. Uploads start at extract, URLs at fetch.
pub async fn submit(
    pool: &PgPool,
    settings: &KnowledgeSettings,
    submitter: &Submitter<'_>,
    submission: Submission,
) -> Result<Submitted, ApiError> {
    let mut tx = pool.begin().await?;
    let submitted = submit_in(&mut tx, settings, submitter, submission).await?;
    tx.commit().await?;
    Ok(submitted)
}

/// [`submit`] inside the caller's transaction.
pub async fn submit_in(
    conn: &mut PgConnection,
    settings: &KnowledgeSettings,
    submitter: &Submitter<'_>,
    submission: Submission,
) -> Result<Submitted, ApiError> {
    let tenant = submitter.tenant();
    let title = match &submission.title {
        Some(title) => check_title(title)?,
        None => default_title(&submission.source),
    };

    // A URL submitted again becomes a new version of its existing source.
    let source_id: Option<Uuid> = match &submission.source {
        NewSource::Url(url) => {
            check_url(url, settings)?;
            sqlx::query_scalar(
                "SELECT id FROM knowledge_sources \
                  WHERE tenant_id = $1 AND url = $2 AND retired_at IS NULL FOR UPDATE",
            )
            .bind(tenant)
            .bind(url.trim())
            .fetch_optional(&mut *conn)
            .await?
        }
        NewSource::Upload { file_name, bytes } => {
            check_file_name(file_name)?;
            if bytes.len() > settings.max_document_bytes {
                return Err(too_large(bytes.len(), settings.max_document_bytes));
            }
            if bytes.is_empty() {
                return Err(ApiError::invalid(
                    "file",
                    file_name,
                    format!("file {file_name:?} is empty; upload a document with content"),
                ));
            }
            None
        }
    };

    let source_id = match source_id {
        Some(id) => id,
        None => {
            let id = Uuid::now_v7();
            let (kind, url) = match (&submission.source, submitter) {
                (NewSource::Url(url), Submitter::Webhook { .. }) => ("webhook", Some(url.trim())),
                (NewSource::Url(url), _) => ("url", Some(url.trim())),
                (NewSource::Upload { .. }, _) => ("upload", None),
            };
            let next_refresh = url.map(|_| OffsetDateTime::now_utc() + settings.refresh_interval);
            sqlx::query(
                "INSERT INTO knowledge_sources \
                   (id, tenant_id, kind, url, title, authority, next_refresh_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(tenant)
            .bind(kind)
            .bind(url)
            .bind(&title)
            .bind(submission.authority.as_str())
            .bind(next_refresh)
            .bind(submitter.user())
            .execute(&mut *conn)
            .await?;
            id
        }
    };

    let (first_stage, file_name, sha256, byte_size) = match &submission.source {
        NewSource::Url(_) => (Stage::Fetch, None, None, None),
        NewSource::Upload { file_name, bytes } => {
            let sha256 = store_blob(conn, tenant, bytes).await?;
            (
                Stage::Extract,
                Some(file_name.clone()),
                Some(sha256),
                Some(bytes.len() as i64),
            )
        }
    };

    let document_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO knowledge_documents \
           (id, tenant_id, source_id, version, status, stage, progress, title, file_name, \
            sha256, byte_size, submitted_by, correlation_id) \
         VALUES ($1, $2, $3, \
                 (SELECT coalesce(max(version), 0) + 1 FROM knowledge_documents WHERE source_id = $3), \
                 'processing', $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(document_id)
    .bind(tenant)
    .bind(source_id)
    .bind(first_stage.as_str())
    .bind(first_stage.starts_at())
    .bind(&title)
    .bind(&file_name)
    .bind(&sha256)
    .bind(byte_size)
    .bind(submitter.user())
    .bind(submitter.correlation_id())
    .execute(&mut *conn)
    .await
    ?;

    let job_id = queue_stage(
        conn,
        tenant,
        document_id,
        first_stage,
        submitter.correlation_id(),
    )
    .await?;

    let detail = json!({
        "title": title,
        "source_id": source_id,
        "authority": submission.authority.as_str(),
        "file_name": file_name,
        "sha256": sha256,
        "url": match &submission.source { NewSource::Url(url) => Some(url.trim()), _ => None },
    });
    audit::record(
        conn,
        &submitter.audit("knowledge.submitted", document_id, detail),
    )
    .await?;

    Ok(Submitted {
        document_id,
        source_id,
        job_id,
    })
}

/// Builds the 413 for a document over the size limit.
pub fn too_large(size: usize, limit: usize) -> ApiError {
    ApiError::TooLarge(format!(
        "the document is {size} bytes, over the limit of {limit} bytes; split it or raise KNOWLEDGE_MAX_DOCUMENT_BYTES"
    ))
}

fn default_title(source: &NewSource) -> String {
    let raw = match source {
        NewSource::Url(url) => url.trim().to_string(),
        NewSource::Upload { file_name, .. } => file_name.clone(),
    };
    raw.chars().take(MAX_TITLE_CHARS).collect()
}

/// Stores `bytes` once per tenant and content hash and returns the hash.
pub async fn store_blob(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    bytes: &[u8],
) -> Result<String, sqlx::Error> {
    let sha256 = sha256_hex(bytes);
    sqlx::query(
        "INSERT INTO knowledge_blobs (tenant_id, sha256, content, byte_size) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, sha256) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(&sha256)
    .bind(bytes)
    .bind(bytes.len() as i64)
    .execute(&mut *conn)
    .await
    ?;
    Ok(sha256)
}

/// Queues the job of `stage` for a document and records it on the document. The idempotency
/// key is the document and stage, so a redelivered stage job cannot queue its successor twice.
pub async fn queue_stage(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    document_id: Uuid,
    stage: Stage,
    correlation_id: &str,
) -> Result<Uuid, sqlx::Error> {
    let kind = stage
        .job_kind()
        .expect("queue_stage is called only for automatic stages");
    let job = NewJob::new(kind, json!({ "document_id": document_id }), correlation_id)
        .tenant(tenant_id)
        .idempotency_key(format!("{document_id}:{}", stage.as_str()));
    let enqueued = ledger::enqueue(conn, job).await?;
    sqlx::query("UPDATE knowledge_documents SET job_id = $2, updated_at = now() WHERE id = $1")
        .bind(document_id)
        .bind(enqueued.job_id)
        .execute(&mut *conn)
        .await?;
    Ok(enqueued.job_id)
}

/// A review as the document view shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewView {
    /// Email of the reviewer.
    pub reviewer: String,
    /// approve or reject.
    pub decision: String,
    /// Accuracy score, 0-1.
    pub accuracy: Option<f32>,
    /// Completeness score, 0-1.
    pub completeness: Option<f32>,
    /// Relevance score, 0-1.
    pub relevance: Option<f32>,
    /// The reviewer's comment.
    pub comment: Option<String>,
    /// When the review was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A document version with its pipeline state, flags and reviews.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DocumentView {
    /// The document version's id.
    pub id: Uuid,
    /// The source it is a version of.
    pub source_id: Uuid,
    /// Version number within the source, from 1.
    pub version: i32,
    /// Title shown in citations.
    pub title: String,
    /// url, upload or webhook.
    pub source_kind: String,
    /// The source URL, for URL and webhook sources.
    pub url: Option<String>,
    /// The uploaded file's name, for display.
    pub file_name: Option<String>,
    /// official, high, medium or low.
    pub authority: String,
    /// processing, in_review, published, rejected, superseded, retired, unchanged, or failed
    /// when the current stage's job ended in dead letters.
    pub status: String,
    /// The current pipeline stage.
    pub stage: String,
    /// Pipeline progress, 0-100.
    pub progress: i16,
    /// Note on the current stage's work.
    pub progress_note: Option<String>,
    /// Detected format (html, pdf, markdown, text, json, xml, docx).
    pub format: Option<String>,
    /// Content type as fetched.
    pub content_type: Option<String>,
    /// SHA-256 of the content.
    pub sha256: Option<String>,
    /// Size of the content in bytes.
    pub byte_size: Option<i64>,
    /// Findings for reviewers, such as hidden text or injection-like instructions.
    #[schema(value_type = Object)]
    pub flags: Value,
    /// Reason the pipeline stopped, when it did.
    pub error: Option<String>,
    /// Email of the submitter; none for webhook and refresh submissions.
    pub submitted_by: Option<String>,
    /// Number of chunks.
    pub chunk_count: i64,
    /// The job running the current stage.
    pub job: Option<JobStatus>,
    /// Reviews so far.
    pub reviews: Vec<ReviewView>,
    /// When it was submitted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When it was published.
    #[serde(with = "time::serde::rfc3339::option")]
    pub published_at: Option<OffsetDateTime>,
}

const DOCUMENT_COLUMNS: &str =
    "d.id, d.source_id, d.version, d.title, s.kind AS source_kind, s.url, \
    d.file_name, s.authority, d.status, d.stage, d.progress, d.progress_note, d.format, \
    d.content_type, d.sha256, d.byte_size, d.flags, d.error, u.email AS submitted_by, \
    (SELECT count(*) FROM knowledge_chunks c WHERE c.document_id = d.id) AS chunk_count, \
    d.job_id, d.created_at, d.updated_at, d.published_at";

fn document_from_row(row: &sqlx::postgres::PgRow) -> DocumentView {
    DocumentView {
        id: row.get("id"),
        source_id: row.get("source_id"),
        version: row.get("version"),
        title: row.get("title"),
        source_kind: row.get("source_kind"),
        url: row.get("url"),
        file_name: row.get("file_name"),
        authority: row.get("authority"),
        status: row.get("status"),
        stage: row.get("stage"),
        progress: row.get("progress"),
        progress_note: row.get("progress_note"),
        format: row.get("format"),
        content_type: row.get("content_type"),
        sha256: row.get("sha256"),
        byte_size: row.get("byte_size"),
        flags: row.get("flags"),
        error: row.get("error"),
        submitted_by: row.get("submitted_by"),
        chunk_count: row.get("chunk_count"),
        job: None,
        reviews: Vec::new(),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        published_at: row.get("published_at"),
    }
}

/// Reads one document of `tenant_id` with its job state and reviews.
pub async fn get(
    pool: &PgPool,
    tenant_id: Uuid,
    document_id: Uuid,
) -> Result<Option<DocumentView>, sqlx::Error> {
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM knowledge_documents d \
           JOIN knowledge_sources s ON s.id = d.source_id \
           LEFT JOIN users u ON u.id = d.submitted_by \
          WHERE d.id = $1 AND d.tenant_id = $2"
    );
    // The SQL is assembled from constant fragments only.
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(document_id)
        .bind(tenant_id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let mut view = document_from_row(&row);
    let job_id: Option<Uuid> = row.get("job_id");
    if let Some(job_id) = job_id {
        view.job = ledger::job_status(pool, Some(tenant_id), job_id).await?;
    }
    mark_failed(&mut view);
    view.reviews = reviews(pool, document_id).await?;
    Ok(Some(view))
}

async fn reviews(pool: &PgPool, document_id: Uuid) -> Result<Vec<ReviewView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT u.email, r.decision, r.accuracy, r.completeness, r.relevance, r.comment, r.created_at \
           FROM knowledge_reviews r JOIN users u ON u.id = r.reviewer_id \
          WHERE r.document_id = $1 ORDER BY r.created_at",
    )
    .bind(document_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| ReviewView {
            reviewer: row.get("email"),
            decision: row.get("decision"),
            accuracy: row.get("accuracy"),
            completeness: row.get("completeness"),
            relevance: row.get("relevance"),
            comment: row.get("comment"),
            created_at: row.get("created_at"),
        })
        .collect())
}

/// Shows a document whose stage job ended in dead letters as `failed`. The stored status stays
/// `processing`, so retrying the dead letter resumes the pipeline where it stopped.
fn mark_failed(view: &mut DocumentView) {
    let job_ended = view
        .job
        .as_ref()
        .is_some_and(|job| matches!(job.status.as_str(), "dead" | "discarded"));
    if view.status == "processing" && job_ended {
        view.status = "failed".to_string();
    }
}

/// Filter of a document list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListFilter {
    /// Every version, newest first.
    #[default]
    All,
    /// Documents waiting for reviewers.
    InReview,
    /// Documents still in the pipeline.
    Processing,
    /// Published documents.
    Published,
}

/// Lists documents of a tenant, newest first, at most `limit`, created before `before` when
/// given (keyset paging on the v7 id, which grows with time).
pub async fn list(
    pool: &PgPool,
    tenant_id: Uuid,
    filter: ListFilter,
    limit: i64,
    before: Option<Uuid>,
) -> Result<Vec<DocumentView>, sqlx::Error> {
    let status = match filter {
        ListFilter::All => None,
        ListFilter::InReview => Some("in_review"),
        ListFilter::Processing => Some("processing"),
        ListFilter::Published => Some("published"),
    };
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM knowledge_documents d \
           JOIN knowledge_sources s ON s.id = d.source_id \
           LEFT JOIN users u ON u.id = d.submitted_by \
          WHERE d.tenant_id = $1 AND ($2::text IS NULL OR d.status = $2) \
            AND ($3::uuid IS NULL OR d.id < $3) \
          ORDER BY d.id DESC LIMIT $4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant_id)
        .bind(status)
        .bind(before)
        .bind(limit.clamp(1, 200))
        .fetch_all(pool)
        .await?;
    let mut views: Vec<DocumentView> = rows.iter().map(document_from_row).collect();
    for (view, row) in views.iter_mut().zip(rows.iter()) {
        let job_id: Option<Uuid> = row.get("job_id");
        if let (Some(job_id), "processing") = (job_id, view.status.as_str()) {
            view.job = ledger::job_status(pool, Some(tenant_id), job_id).await?;
            mark_failed(view);
        }
    }
    Ok(views)
}

/// A chunk as the document view and search show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChunkView {
    /// The chunk's id, used in citations.
    pub id: Uuid,
    /// Position in the document, from 0.
    pub ordinal: i32,
    /// Headings above the chunk, outermost first.
    pub section_path: Vec<String>,
    /// The chunk's text.
    pub text: String,
    /// The embedding model, once embedded.
    pub embedding_model: Option<String>,
}

/// Lists the chunks of a document of `tenant_id` in order.
pub async fn chunks(
    pool: &PgPool,
    tenant_id: Uuid,
    document_id: Uuid,
) -> Result<Vec<ChunkView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, ordinal, section_path, text, embedding_model FROM knowledge_chunks \
          WHERE document_id = $1 AND tenant_id = $2 ORDER BY ordinal",
    )
    .bind(document_id)
    .bind(tenant_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| ChunkView {
            id: row.get("id"),
            ordinal: row.get("ordinal"),
            section_path: row.get("section_path"),
            text: row.get("text"),
            embedding_model: row.get("embedding_model"),
        })
        .collect())
}

/// Retires a published or in-review document: its chunks leave search and its source stops
/// refreshing. Returns 409 for a document in another state.
pub async fn retire(pool: &PgPool, caller: &Caller, document_id: Uuid) -> Result<(), ApiError> {
    let tenant = caller.principal.tenant_id.0;
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT status, source_id FROM knowledge_documents WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(document_id)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await
    ?
    .ok_or_else(|| ApiError::NotFound(format!("knowledge document {document_id} not found")))?;
    let status: String = row.get("status");
    let source_id: Uuid = row.get("source_id");
    if !matches!(status.as_str(), "published" | "in_review") {
        return Err(ApiError::Conflict {
            message: format!("knowledge document {document_id} is {status}; only published or in-review documents can be retired"),
            existing_id: None,
        });
    }
    sqlx::query(
        "UPDATE knowledge_documents SET status = 'retired', updated_at = now() WHERE id = $1",
    )
    .bind(document_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE knowledge_chunks SET searchable = false WHERE document_id = $1")
        .bind(document_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE knowledge_sources SET retired_at = now(), next_refresh_at = NULL WHERE id = $1",
    )
    .bind(source_id)
    .execute(&mut *tx)
    .await?;
    let event = caller.audit_event(
        "knowledge_document",
        "knowledge.retired",
        document_id,
        json!({ "was": status }),
    );
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(())
}

/// Queues a new version of every URL source whose refresh time has come, moves its next refresh
/// on, and returns how many sources were queued. The fetch stage stops with `unchanged` when the
/// content hash did not change. Locked sources are skipped, so two upkeep runs at once queue
/// each source once.
pub async fn refresh_due(
    pool: &PgPool,
    settings: &KnowledgeSettings,
    correlation_id: &str,
) -> Result<u64, ApiError> {
    let mut tx = pool.begin().await?;
    let due = sqlx::query(
        "SELECT id, tenant_id, url, title, authority FROM knowledge_sources \
          WHERE next_refresh_at <= now() AND retired_at IS NULL AND url IS NOT NULL \
          ORDER BY next_refresh_at LIMIT 100 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut queued = 0;
    for row in &due {
        let source_id: Uuid = row.get("id");
        let tenant_id: Uuid = row.get("tenant_id");
        let url: String = row.get("url");
        let authority: String = row.get("authority");
        // A version still in the pipeline will be checked against the next refresh instead.
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM knowledge_documents WHERE source_id = $1 AND status = 'processing')",
        )
        .bind(source_id)
        .fetch_one(&mut *tx)
        .await?;
        if !busy {
            let submitter = Submitter::Refresh {
                tenant_id,
                correlation_id: correlation_id.to_string(),
            };
            let submission = Submission {
                source: NewSource::Url(url),
                title: Some(row.get("title")),
                authority: Authority::parse(&authority).unwrap_or(Authority::Medium),
            };
            submit_in(&mut tx, settings, &submitter, submission).await?;
            queued += 1;
        }
        sqlx::query("UPDATE knowledge_sources SET next_refresh_at = $2 WHERE id = $1")
            .bind(source_id)
            .bind(OffsetDateTime::now_utc() + settings.refresh_interval)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(queued)
}
