//! The knowledge base as server functions: documents and their pipeline progress, search, the
//! review queue, reviews, retirement and submission by URL. Uploads go to a plain form route of
//! the server crate ([`UPLOAD_PATH`]) because a multipart body does not fit a server function.
//!
//! Any role reads documents and searches; approvers and admins review (never their own
//! submission); admins submit and retire. Values cross to the browser as display-ready text
//! formatted on the server, so the browser build needs neither the backend's types nor a date
//! library.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
mod ssr;

/// Path of the Knowledge page: search, documents and, for admins, the add forms.
pub const KNOWLEDGE_PATH: &str = "/knowledge";

/// Path of the review queue.
pub const REVIEW_PATH: &str = "/knowledge/review";

/// Path that the upload form posts `multipart/form-data` to, served by the server crate.
pub const UPLOAD_PATH: &str = "/knowledge/upload";

/// Query parameter that carries an upload's error sentence back to the Knowledge page.
pub const UPLOAD_ERROR_PARAM: &str = "error";

/// Documents on one page of the list.
pub const PAGE_SIZE: i64 = 50;

/// Most documents the review queue shows, oldest submissions last.
pub const QUEUE_LIMIT: i64 = 100;

/// Search results shown for one query.
pub const SEARCH_RESULTS: usize = 8;

/// Maximum length of a search query, in characters; the REST search has the same limit.
pub const MAX_QUERY_CHARS: usize = 500;

/// Maximum length of a review comment, in characters; the backend rejects longer comments.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// Maximum length of a document title, in characters; the backend rejects longer titles.
pub const MAX_TITLE_CHARS: usize = 300;

/// Maximum length of a source URL, in bytes; the backend rejects longer URLs.
pub const MAX_URL_BYTES: usize = 2048;

/// Approvals that publish a document.
pub const APPROVALS_NEEDED: i64 = 2;

/// Authority names, most trusted first, for the submission forms.
pub const AUTHORITIES: [&str; 4] = ["official", "high", "medium", "low"];

/// Authority a submission gets unless the admin picks another.
pub const DEFAULT_AUTHORITY: &str = "medium";

/// Pipeline stages in order, as the backend stores them.
pub const STAGES: [&str; 8] = [
    "fetch", "extract", "sanitize", "chunk", "embed", "index", "review", "publish",
];

/// Choices of the list's status filter: the value sent and its label.
pub const LIST_FILTERS: [(&str, &str); 4] = [
    ("all", "All"),
    ("processing", "Processing"),
    ("in_review", "In review"),
    ("published", "Published"),
];

/// Builds the Knowledge page address that shows `message` as the upload's error.
pub fn upload_error_target(message: &str) -> String {
    format!(
        "{KNOWLEDGE_PATH}?{UPLOAD_ERROR_PARAM}={}",
        percent_encode(message)
    )
}

/// Percent-encodes every byte except the unreserved characters of RFC 3986.
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Returns the path of document `id`'s page.
pub fn document_path(id: &str) -> String {
    format!("{KNOWLEDGE_PATH}/documents/{id}")
}

/// Names a stage for people, e.g. `Embed`.
pub fn stage_label(stage: &str) -> String {
    let mut chars = stage.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A document version as a row of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRow {
    /// Document version id.
    pub id: String,
    /// Title shown in citations.
    pub title: String,
    /// The URL, or the uploaded file's name.
    pub source: String,
    /// url, upload or webhook.
    pub source_kind: String,
    /// official, high, medium or low.
    pub authority: String,
    /// processing, failed, in_review, published, rejected, superseded, retired or unchanged.
    pub status: String,
    /// The current stage, one of [`STAGES`].
    pub stage: String,
    /// Pipeline progress, 0-100.
    pub progress: i16,
    /// The stage and what it is doing, e.g. `Embed: embedded 4 of 9 chunks`.
    pub progress_text: String,
    /// Version number within the source, from 1.
    pub version: i32,
    /// Submission time, `YYYY-MM-DD HH:MM UTC`.
    pub created_at: String,
    /// Time since submission, e.g. `5 min ago`.
    pub age: String,
}

impl DocumentRow {
    /// Checks whether the row shows a progress bar: while the stage jobs run, when one of them
    /// failed, and while the document waits at the review stage.
    pub fn shows_progress(&self) -> bool {
        matches!(self.status.as_str(), "processing" | "failed" | "in_review")
    }
}

/// One page of the document list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentList {
    /// Newest first.
    pub rows: Vec<DocumentRow>,
    /// Pass as `cursor` for older documents; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A published chunk that matches a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The chunk's id, which citations name.
    pub chunk_id: String,
    /// The document version the chunk belongs to.
    pub document_id: String,
    /// The document's title.
    pub title: String,
    /// Headings above the chunk joined by ` › `, or empty.
    pub section: String,
    /// The start of the chunk's text.
    pub excerpt: String,
    /// official, high, medium or low.
    pub authority: String,
    /// Fused rank score after the authority and freshness weights, four decimals.
    pub score: String,
}

/// A finding for reviewers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagRow {
    /// `injection` for instruction-like text, `hidden` for removed hidden text, `info` for
    /// the rest (scripts, boilerplate, unreadable pages).
    pub level: String,
    /// The finding in words, e.g. `Injection-like instruction`.
    pub label: String,
    /// The pipeline's record of the finding, e.g. the matched words or the characters removed.
    pub detail: String,
    /// Headings of the section it was found in, joined by ` › `, or empty.
    pub section: String,
}

/// One review of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRow {
    /// Email of the reviewer.
    pub reviewer: String,
    /// approve or reject.
    pub decision: String,
    /// The scores, e.g. `accuracy 0.90 · completeness 0.80 · relevance 0.70`; empty when
    /// the review carries none.
    pub scores: String,
    /// The reviewer's comment.
    pub comment: Option<String>,
    /// When, `YYYY-MM-DD HH:MM UTC`.
    pub at: String,
}

/// A document waiting for reviewers, with what they need to decide whether to open it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRow {
    /// The list fields.
    pub row: DocumentRow,
    /// Email of the submitter, or `webhook or refresh` for automatic submissions.
    pub submitted_by: String,
    /// Approvals so far.
    pub approvals: i64,
    /// Emails of the approvers so far.
    pub approved_by: Vec<String>,
    /// Findings for reviewers.
    pub flags: Vec<FlagRow>,
    /// Number of chunks.
    pub chunk_count: i64,
}

/// One stage of the pipeline as the document page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStep {
    /// Stage name, one of [`STAGES`].
    pub stage: String,
    /// `done`, `current`, `failed` or `todo`.
    pub state: String,
}

/// A chunk of a document's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRow {
    /// Position in the document, from 0.
    pub ordinal: i32,
    /// Headings above the chunk joined by ` › `, or empty.
    pub section: String,
    /// The chunk's text.
    pub text: String,
}

/// A document version with everything its page shows and what the caller may do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentDetail {
    /// The list fields.
    pub row: DocumentRow,
    /// Email of the submitter, or `webhook or refresh` for automatic submissions.
    pub submitted_by: String,
    /// Detected format, content type, size and SHA-256 as label and value pairs.
    pub facts: Vec<(String, String)>,
    /// The reason the pipeline stopped, or the error of the current stage's last attempt.
    pub error: Option<String>,
    /// The stage job's status: queued, running, succeeded, dead or discarded.
    pub job_status: Option<String>,
    /// Every stage with its state.
    pub stages: Vec<StageStep>,
    /// Findings for reviewers.
    pub flags: Vec<FlagRow>,
    /// Reviews so far, oldest first.
    pub reviews: Vec<ReviewRow>,
    /// Approvals so far.
    pub approvals: i64,
    /// Number of chunks.
    pub chunk_count: i64,
    /// The chunks in order, or `None` while the pipeline still runs.
    pub chunks: Option<Vec<ChunkRow>>,
    /// Whether the caller may review the document now.
    pub can_review: bool,
    /// Whether a review must carry the three scores, which the first approval needs.
    pub scores_required: bool,
    /// Whether the caller may retire the document now.
    pub can_retire: bool,
    /// Whether the caller is an admin, who may open the dead letters of a failed stage.
    pub is_admin: bool,
    /// Sentences on what the caller can or must wait for, e.g. why they cannot review.
    pub notes: Vec<String>,
}

impl DocumentDetail {
    /// Checks whether the stage jobs are still running, so the page refreshes itself.
    pub fn is_processing(&self) -> bool {
        self.row.status == "processing"
    }
}

/// The document's state after a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewResult {
    /// in_review, published or rejected.
    pub status: String,
    /// Approvals so far.
    pub approvals: i64,
    /// False when the caller had reviewed the document before, so the earlier review counts.
    pub recorded: bool,
}

/// Lists the tenant's documents, newest first, optionally only those in `status` (one of the
/// [`LIST_FILTERS`] values). Any role.
#[server(prefix = "/sfn", endpoint = "knowledge-documents")]
pub async fn list_knowledge_documents(
    #[server(default)] status: Option<String>,
    #[server(default)] cursor: Option<String>,
) -> Result<DocumentList, ServerFnError> {
    use backend::http::AnyRole;
    use backend::knowledge::store;

    let call = ssr::Call::<AnyRole>::authorize().await?;
    let filter = ssr::parse_filter(status.as_deref()).map_err(|error| call.fail(error))?;
    let cursor = ssr::parse_cursor(cursor.as_deref()).map_err(|error| call.fail(error))?;
    let documents = store::list(&call.state.pool, call.tenant(), filter, PAGE_SIZE, cursor)
        .await
        .map_err(|error| call.fail(error.into()))?;
    let next_cursor = (documents.len() as i64 == PAGE_SIZE)
        .then(|| documents.last().map(|document| document.id.to_string()))
        .flatten();
    Ok(DocumentList {
        rows: documents.iter().map(ssr::row).collect(),
        next_cursor,
    })
}

/// Searches the tenant's published chunks for `q` and returns the best [`SEARCH_RESULTS`].
/// Any role.
#[server(prefix = "/sfn", endpoint = "knowledge-search")]
pub async fn search_knowledge(q: String) -> Result<Vec<SearchResult>, ServerFnError> {
    use backend::http::AnyRole;
    use backend::knowledge::search;

    let call = ssr::Call::<AnyRole>::authorize().await?;
    let query = ssr::parse_query(&q).map_err(|error| call.fail(error))?;
    let hits = search::search_text(
        &call.state.pool,
        call.state.embedder.as_ref(),
        call.tenant(),
        &call.correlation.0,
        &query,
        SEARCH_RESULTS,
    )
    .await
    .map_err(|error| call.fail(error))?;
    Ok(hits.into_iter().map(ssr::search_result).collect())
}

/// Lists the documents waiting for reviewers, with their flags and approvals. Approvers and
/// admins.
#[server(prefix = "/sfn", endpoint = "knowledge-review-queue")]
pub async fn load_review_queue() -> Result<Vec<QueueRow>, ServerFnError> {
    use backend::http::AnyRole;
    use backend::knowledge::store::{self, ListFilter};

    let call = ssr::Call::<AnyRole>::authorize().await?;
    ssr::require_reviewer(&call).map_err(|error| call.fail(error))?;
    let listed = store::list(
        &call.state.pool,
        call.tenant(),
        ListFilter::InReview,
        QUEUE_LIMIT,
        None,
    )
    .await
    .map_err(|error| call.fail(error.into()))?;

    // The list leaves out reviews, so each document is read whole; the queue is short.
    let mut queue = Vec::with_capacity(listed.len());
    for document in listed {
        let Some(document) = store::get(&call.state.pool, call.tenant(), document.id)
            .await
            .map_err(|error| call.fail(error.into()))?
        else {
            continue;
        };
        queue.push(ssr::queue_row(&document));
    }
    Ok(queue)
}

/// Reads one document with its stages, flags, reviews, chunks and the actions open to the
/// caller. Any role.
#[server(prefix = "/sfn", endpoint = "knowledge-document")]
pub async fn load_knowledge_document(id: String) -> Result<DocumentDetail, ServerFnError> {
    use backend::http::AnyRole;
    use backend::knowledge::store;

    let call = ssr::Call::<AnyRole>::authorize().await?;
    let uuid = ssr::parse_id("id", &id).map_err(|error| call.fail(error))?;
    let document = store::get(&call.state.pool, call.tenant(), uuid)
        .await
        .map_err(|error| call.fail(error.into()))?
        .ok_or_else(|| call.fail(ssr::not_found(uuid)))?;
    // Chunks change until the pipeline ends, and the page reloads every 2 s meanwhile, so
    // they are read only once it has.
    let chunks = if document.status == "processing" {
        None
    } else {
        let chunks = store::chunks(&call.state.pool, call.tenant(), uuid)
            .await
            .map_err(|error| call.fail(error.into()))?;
        Some(chunks)
    };
    Ok(ssr::detail(&document, chunks, call.caller.principal()))
}

/// Records the caller's review of document `id`. `decision` is approve or reject. The scores
/// are numbers from 0 to 1, or empty for none, and the first approval needs all three. A
/// rejection needs a comment. Approvers and admins, never the submitter.
#[server(prefix = "/sfn", endpoint = "knowledge-review")]
pub async fn review_knowledge_document(
    id: String,
    decision: String,
    #[server(default)] accuracy: String,
    #[server(default)] completeness: String,
    #[server(default)] relevance: String,
    #[server(default)] comment: String,
) -> Result<ReviewResult, ServerFnError> {
    use backend::http::AnyRole;
    use backend::knowledge::review::{self, NewReview};

    let call = ssr::Call::<AnyRole>::authorize().await?;
    let uuid = ssr::parse_id("id", &id).map_err(|error| call.fail(error))?;
    let new_review = NewReview {
        decision: ssr::parse_decision(&decision).map_err(|error| call.fail(error))?,
        accuracy: ssr::parse_score("accuracy", &accuracy).map_err(|error| call.fail(error))?,
        completeness: ssr::parse_score("completeness", &completeness)
            .map_err(|error| call.fail(error))?,
        relevance: ssr::parse_score("relevance", &relevance).map_err(|error| call.fail(error))?,
        comment: Some(comment.trim().to_string()).filter(|text| !text.is_empty()),
    };
    let caller = call.audit_caller().await?;
    let outcome = review::review(&call.state.pool, &caller, uuid, &new_review)
        .await
        .map_err(|error| call.fail(error))?;
    tracing::info!(
        document_id = %uuid,
        decision = %decision.trim(),
        status = %outcome.status,
        approvals = outcome.approvals,
        recorded = outcome.recorded,
        "knowledge document reviewed from its page"
    );
    Ok(ReviewResult {
        status: outcome.status,
        approvals: outcome.approvals,
        recorded: outcome.recorded,
    })
}

/// Retires published or in-review document `id`: its chunks leave search and its source stops
/// refreshing. Admins only.
#[server(prefix = "/sfn", endpoint = "knowledge-retire")]
pub async fn retire_knowledge_document(id: String) -> Result<(), ServerFnError> {
    use backend::http::AdminRole;
    use backend::knowledge::store;

    let call = ssr::Call::<AdminRole>::authorize().await?;
    let uuid = ssr::parse_id("id", &id).map_err(|error| call.fail(error))?;
    let caller = call.audit_caller().await?;
    store::retire(&call.state.pool, &caller, uuid)
        .await
        .map_err(|error| call.fail(error))?;
    tracing::info!(document_id = %uuid, "knowledge document retired from its page");
    Ok(())
}

/// Submits the document at `url` with an optional title and an authority (empty for
/// [`DEFAULT_AUTHORITY`]), then sends the browser to the new document's page. Admins only.
#[server(prefix = "/sfn", endpoint = "knowledge-submit-url")]
pub async fn submit_knowledge_url(
    url: String,
    #[server(default)] title: String,
    #[server(default)] authority: String,
) -> Result<String, ServerFnError> {
    use backend::http::AdminRole;
    use backend::knowledge::store::{self, NewSource, Submission, Submitter};

    let call = ssr::Call::<AdminRole>::authorize().await?;
    let submission = Submission {
        source: NewSource::Url(url.trim().to_string()),
        title: Some(title.trim().to_string()).filter(|text| !text.is_empty()),
        authority: ssr::parse_authority(&authority).map_err(|error| call.fail(error))?,
    };
    let caller = call.audit_caller().await?;
    let submitted = store::submit(
        &call.state.pool,
        &call.state.settings.knowledge,
        &Submitter::User(&caller),
        submission,
    )
    .await
    .map_err(|error| call.fail(error))?;
    tracing::info!(
        document_id = %submitted.document_id,
        job_id = %submitted.job_id,
        "knowledge document submitted by URL from the Knowledge page"
    );
    leptos_axum::redirect(&document_path(&submitted.document_id.to_string()));
    Ok(submitted.document_id.to_string())
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    #[test]
    fn stages_match_backend() {
        let backend: Vec<&str> = backend::knowledge::Stage::ALL
            .iter()
            .map(|stage| stage.as_str())
            .collect();
        assert_eq!(backend, STAGES);
    }

    #[test]
    fn authorities_match_backend() {
        for name in AUTHORITIES {
            assert!(
                backend::knowledge::Authority::parse(name).is_some(),
                "{name} is not a backend authority"
            );
        }
        assert!(AUTHORITIES.contains(&DEFAULT_AUTHORITY));
    }

    #[test]
    fn limits_match_backend() {
        assert_eq!(MAX_TITLE_CHARS, backend::knowledge::store::MAX_TITLE_CHARS);
    }

    #[test]
    fn upload_error_target_encodes_the_sentence() {
        assert_eq!(
            upload_error_target("file name \"a/b\" is not accepted: x & y"),
            "/knowledge?error=file%20name%20%22a%2Fb%22%20is%20not%20accepted%3A%20x%20%26%20y"
        );
    }

    #[test]
    fn stage_label_capitalizes() {
        assert_eq!(stage_label("embed"), "Embed");
        assert_eq!(stage_label(""), "");
    }
}
