//! REST routes of the knowledge base: submitting documents, their progress and chunks, reviews,
//! retirement, search, the signed webhook and the URL guard's verdict.

use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use backend::changes::store::Caller;
use backend::http::{
    AdminRole, AnyRole, ApiError, ApiJson, Authorized, ClientMeta, CorrelationId, ReviewerRole,
};
use backend::ids::parse_uuid;
use backend::knowledge::review::{self, NewReview, ReviewOutcome};
use backend::knowledge::search::{self, SearchHit, DEFAULT_K, MAX_K};
use backend::knowledge::store::{
    self, ChunkView, DocumentView, ListFilter, NewSource, Submission, Submitted, Submitter,
};
use backend::knowledge::webhook::{self, SignedHeaders};
use backend::knowledge::Authority;
use backend::net::{check_url, SystemResolver};
use backend::AppState;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Body of `POST /api/v1/knowledge/url-check`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlCheck {
    /// The URL a knowledge source would be fetched from.
    pub url: String,
}

/// The guard's verdict on a URL.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UrlVerdict {
    /// True when a fetch would be attempted.
    pub allowed: bool,
    /// Stable code of the refusal, e.g. `private_address`; absent when allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence naming the value at fault and the fix; absent when allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Longest URL accepted, in characters.
const MAX_URL_CHARS: usize = 2048;

/// Runs the outbound URL guard on a URL (admins): parsing, scheme, port, name resolution and
/// every resolved address, without fetching anything.
#[utoipa::path(post, path = "/api/v1/knowledge/url-check", request_body = UrlCheck, responses(
    (status = 200, body = UrlVerdict),
    (status = 403, body = backend::http::ErrorBody),
    (status = 422, body = backend::http::ErrorBody),
))]
pub async fn url_check(
    _caller: Authorized<AdminRole>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<UrlCheck>,
) -> Result<Json<UrlVerdict>, ApiError> {
    let url = body.url.trim();
    if url.is_empty() || url.chars().count() > MAX_URL_CHARS {
        return Err(ApiError::Unprocessable {
            message: format!("url must have 1 to {MAX_URL_CHARS} characters"),
            field: Some("url".to_string()),
            value: Some(url.to_string()),
        });
    }
    let policy = state.settings.knowledge.fetch_policy();
    let verdict = match check_url(url, &policy, &SystemResolver).await {
        Ok(_) => UrlVerdict {
            allowed: true,
            reason: None,
            message: None,
        },
        Err(refusal) => UrlVerdict {
            allowed: false,
            reason: Some(refusal.reason_code().to_string()),
            message: Some(refusal.to_string()),
        },
    };
    Ok(Json(verdict))
}

/// JSON body of `POST /api/v1/knowledge/documents` for a URL source. Uploads send
/// `multipart/form-data` with a `file` part and optional `title` and `authority` parts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUrlDocument {
    /// The https URL to fetch.
    pub url: String,
    /// Title for citations; the URL when absent.
    pub title: Option<String>,
    /// official, high, medium or low; medium when absent.
    pub authority: Option<Authority>,
}

fn parse_authority(text: Option<&str>) -> Result<Authority, ApiError> {
    match text.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(Authority::Medium),
        Some(text) => Authority::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "authority",
                text,
                "authority must be official, high, medium or low",
            )
        }),
    }
}

/// Submits a document (admins): JSON `{url}` or a multipart upload. Returns 202 with the
/// document id. The pipeline runs as jobs, and `GET .../documents/{id}` shows their progress.
#[utoipa::path(post, path = "/api/v1/knowledge/documents", request_body = NewUrlDocument, responses(
    (status = 202, body = Submitted),
    (status = 400, body = backend::http::ErrorBody),
    (status = 413, body = backend::http::ErrorBody),
))]
pub async fn submit(
    caller: Authorized<AdminRole>,
    State(state): State<AppState>,
    client: ClientMeta,
    correlation: CorrelationId,
    request: Request,
) -> Result<Response, ApiError> {
    let settings = &state.settings.knowledge;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let submission = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|rejection| {
                ApiError::invalid(
                    "body",
                    &content_type,
                    format!("the multipart body cannot be read: {rejection}"),
                )
            })?;
        read_upload(multipart, settings.max_document_bytes).await?
    } else {
        let length = crate::middleware::declared_length(request.headers()).unwrap_or(0);
        if length > state.settings.json_body_limit {
            return Err(ApiError::TooLarge(format!(
                "request body is {length} bytes, over the JSON limit of {} bytes; upload files as multipart/form-data",
                state.settings.json_body_limit
            )));
        }
        let ApiJson(body) = ApiJson::<NewUrlDocument>::from_request(request, &state).await?;
        Submission {
            source: NewSource::Url(body.url),
            title: body.title,
            authority: body.authority.unwrap_or(Authority::Medium),
        }
    };
    let caller = Caller::new(caller.principal(), &client, &correlation);
    let submitted =
        store::submit(&state.pool, settings, &Submitter::User(&caller), submission).await?;
    Ok((StatusCode::ACCEPTED, Json(submitted)).into_response())
}

/// The parts of an upload form, as sent.
pub(crate) struct UploadParts {
    /// The `file` part's name and bytes, when the form has one.
    pub file: Option<(String, Vec<u8>)>,
    /// The `title` part.
    pub title: Option<String>,
    /// The `authority` part.
    pub authority: Option<String>,
}

/// Reads the `file`, `title` and `authority` parts of an upload. `check_name` runs on the file
/// name before its bytes are read, and the file is rejected as soon as its bytes pass `limit`.
/// `broken` converts any other multipart failure into the caller's error; a body cut by the
/// route's size limit is always 413.
pub(crate) async fn read_upload_parts(
    mut multipart: Multipart,
    limit: usize,
    check_name: impl Fn(&str) -> Result<(), ApiError>,
    broken: impl Fn(MultipartError) -> ApiError,
) -> Result<UploadParts, ApiError> {
    let broken = |error: MultipartError| {
        if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::TooLarge(format!(
                "the upload is larger than the document limit of {limit} bytes; split the \
                 document or raise KNOWLEDGE_MAX_DOCUMENT_BYTES"
            ));
        }
        broken(error)
    };
    let mut parts = UploadParts {
        file: None,
        title: None,
        authority: None,
    };
    while let Some(mut field) = multipart.next_field().await.map_err(&broken)? {
        match field.name().unwrap_or("") {
            "file" => {
                let name = field.file_name().unwrap_or("").to_string();
                check_name(&name)?;
                let mut bytes = Vec::new();
                while let Some(piece) = field.chunk().await.map_err(&broken)? {
                    if bytes.len() + piece.len() > limit {
                        return Err(store::too_large(bytes.len() + piece.len(), limit));
                    }
                    bytes.extend_from_slice(&piece);
                }
                parts.file = Some((name, bytes));
            }
            "title" => parts.title = Some(field.text().await.map_err(&broken)?),
            "authority" => parts.authority = Some(field.text().await.map_err(&broken)?),
            other => {
                return Err(ApiError::invalid(
                    "body",
                    other,
                    format!("unknown form field {other:?}; send file, title and authority"),
                ))
            }
        }
    }
    Ok(parts)
}

/// Reads an API upload, rejecting a file over `limit` bytes while it streams in.
async fn read_upload(multipart: Multipart, limit: usize) -> Result<Submission, ApiError> {
    let bad_part = |error: MultipartError| {
        ApiError::invalid(
            "body",
            "",
            format!("the multipart body cannot be read: {error}"),
        )
    };
    let parts = read_upload_parts(multipart, limit, store::check_file_name, bad_part).await?;
    let (file_name, bytes) = parts.file.ok_or_else(|| {
        ApiError::invalid(
            "file",
            "",
            "the upload has no file part; send the document in a part named file",
        )
    })?;
    Ok(Submission {
        source: NewSource::Upload { file_name, bytes },
        title: parts.title.filter(|title| !title.trim().is_empty()),
        authority: parse_authority(parts.authority.as_deref())?,
    })
}

/// Query of `GET /api/v1/knowledge/documents`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DocumentQuery {
    /// all (default), processing, in_review or published.
    pub status: Option<String>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of documents.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DocumentPage {
    /// Newest first.
    pub items: Vec<DocumentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// Lists the tenant's documents, newest first.
#[utoipa::path(get, path = "/api/v1/knowledge/documents", params(DocumentQuery), responses(
    (status = 200, body = DocumentPage),
))]
pub async fn list(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    Query(query): Query<DocumentQuery>,
) -> Result<Json<DocumentPage>, ApiError> {
    let filter = match query.status.as_deref().unwrap_or("all") {
        "all" | "" => ListFilter::All,
        "processing" => ListFilter::Processing,
        "in_review" => ListFilter::InReview,
        "published" => ListFilter::Published,
        other => {
            return Err(ApiError::invalid(
                "status",
                other,
                "status must be all, processing, in_review or published",
            ))
        }
    };
    let limit = match query.limit.as_deref().filter(|text| !text.is_empty()) {
        None => 50,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|limit| (1..=200).contains(limit))
            .ok_or_else(|| {
                ApiError::invalid("limit", text, "limit must be a whole number from 1 to 200")
            })?,
    };
    let cursor = query
        .cursor
        .as_deref()
        .filter(|text| !text.is_empty())
        .map(|text| parse_uuid("cursor", text))
        .transpose()?;
    let tenant = caller.scope().tenant_id().0;
    let items = store::list(&state.pool, tenant, filter, limit, cursor).await?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|item| item.id))
        .flatten();
    Ok(Json(DocumentPage { items, next_cursor }))
}

/// One document: status, stage, progress, flags, job and reviews.
#[utoipa::path(get, path = "/api/v1/knowledge/documents/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = DocumentView),
    (status = 404, body = backend::http::ErrorBody),
))]
pub async fn show(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DocumentView>, ApiError> {
    let id = parse_uuid("id", &id)?;
    let tenant = caller.scope().tenant_id().0;
    store::get(&state.pool, tenant, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("knowledge document {id} not found")))
}

/// The chunks of a document, in order.
#[utoipa::path(get, path = "/api/v1/knowledge/documents/{id}/chunks", params(("id" = String, Path)), responses(
    (status = 200, body = Vec<ChunkView>),
    (status = 404, body = backend::http::ErrorBody),
))]
pub async fn chunks(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<ChunkView>>, ApiError> {
    let id = parse_uuid("id", &id)?;
    let tenant = caller.scope().tenant_id().0;
    if store::get(&state.pool, tenant, id).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "knowledge document {id} not found"
        )));
    }
    Ok(Json(store::chunks(&state.pool, tenant, id).await?))
}

/// Records a review (approvers and admins, never the submitter); the second approval publishes.
#[utoipa::path(post, path = "/api/v1/knowledge/documents/{id}/reviews", params(("id" = String, Path)), request_body = NewReview, responses(
    (status = 200, body = ReviewOutcome),
    (status = 403, body = backend::http::ErrorBody),
    (status = 409, body = backend::http::ErrorBody),
))]
pub async fn add_review(
    caller: Authorized<ReviewerRole>,
    State(state): State<AppState>,
    client: ClientMeta,
    correlation: CorrelationId,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewReview>,
) -> Result<Json<ReviewOutcome>, ApiError> {
    let id = parse_uuid("id", &id)?;
    let caller = Caller::new(caller.principal(), &client, &correlation);
    Ok(Json(review::review(&state.pool, &caller, id, &body).await?))
}

/// Retires a document (admins): its chunks leave search and its source stops refreshing.
#[utoipa::path(post, path = "/api/v1/knowledge/documents/{id}/retire", params(("id" = String, Path)), responses(
    (status = 204),
    (status = 409, body = backend::http::ErrorBody),
))]
pub async fn retire(
    caller: Authorized<AdminRole>,
    State(state): State<AppState>,
    client: ClientMeta,
    correlation: CorrelationId,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_uuid("id", &id)?;
    let caller = Caller::new(caller.principal(), &client, &correlation);
    store::retire(&state.pool, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /api/v1/knowledge/search`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// The question or words to look for, 1-500 characters.
    pub q: Option<String>,
    /// Results wanted, 1-50 (default 8).
    pub k: Option<String>,
}

/// Maximum search query length, in characters.
const MAX_QUERY_CHARS: usize = 500;

/// Searches published chunks: vector and full-text ranks fused, weighted by authority and
/// freshness.
#[utoipa::path(get, path = "/api/v1/knowledge/search", params(SearchQuery), responses(
    (status = 200, body = Vec<SearchHit>),
    (status = 400, body = backend::http::ErrorBody),
))]
pub async fn search(
    caller: Authorized<AnyRole>,
    State(state): State<AppState>,
    correlation: CorrelationId,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Vec<SearchHit>>, ApiError> {
    let text = query.q.as_deref().map(str::trim).unwrap_or("");
    if text.is_empty() || text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid(
            "q",
            text,
            "q must be 1 to 500 characters, e.g. ?q=exit+signs",
        ));
    }
    let k = match query.k.as_deref().filter(|text| !text.is_empty()) {
        None => DEFAULT_K,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|k| (1..=MAX_K).contains(k))
            .ok_or_else(|| ApiError::invalid("k", raw, "k must be a whole number from 1 to 50"))?,
    };
    let tenant = caller.scope().tenant_id().0;
    let hits = search::search_text(
        &state.pool,
        state.embedder.as_ref(),
        tenant,
        &correlation.0,
        text,
        k,
    )
    .await?;
    Ok(Json(hits))
}

/// Body of a knowledge webhook delivery.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookNotice {
    /// Slug of the tenant whose knowledge base receives the source.
    pub tenant: String,
    /// The https URL of the new or changed document.
    pub url: String,
    /// Title for citations.
    pub title: Option<String>,
    /// official, high, medium or low; medium when absent.
    pub authority: Option<Authority>,
}

/// Accepts a signed source notification and queues its fetch. Signature: HMAC-SHA256 of
/// `"{X-Siteline-Timestamp}.{body}"`, sent as `X-Siteline-Signature: sha256=<hex>`, with a
/// unique `X-Siteline-Delivery`; timestamps over 5 minutes old and replayed deliveries are
/// refused.
#[utoipa::path(post, path = "/api/v1/webhooks/knowledge", request_body = WebhookNotice, responses(
    (status = 202, body = Submitted),
    (status = 401, body = backend::http::ErrorBody),
    (status = 409, body = backend::http::ErrorBody),
))]
pub async fn webhook(
    State(state): State<AppState>,
    correlation: CorrelationId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let settings = &state.settings.knowledge;
    let header_text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let signed = SignedHeaders {
        timestamp: header_text(webhook::TIMESTAMP_HEADER),
        delivery_id: header_text(webhook::DELIVERY_HEADER),
        signature: header_text(webhook::SIGNATURE_HEADER),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let delivery_id = webhook::verify(
        &signed,
        &body,
        &settings.webhook_secrets,
        settings.webhook_tolerance,
        now,
    )?;
    let notice: WebhookNotice = serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid("body", "", format!("the delivery body is not a valid notice: {error}; send {{\"tenant\", \"url\", \"title\", \"authority\"}}"))
    })?;
    let tenant_id: Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(&notice.tenant)
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {} not found", notice.tenant)))?;

    let mut tx = state.pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO knowledge_webhook_deliveries (delivery_id, tenant_id) VALUES ($1, $2) \
         ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(delivery_id)
    .bind(tenant_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(ApiError::Conflict {
            message: format!("delivery {delivery_id} was already received; send each notification with a new delivery id"),
            existing_id: None,
        });
    }
    let submitter = Submitter::Webhook {
        tenant_id,
        correlation_id: correlation.0.clone(),
    };
    let submission = Submission {
        source: NewSource::Url(notice.url),
        title: notice.title,
        authority: notice.authority.unwrap_or(Authority::Medium),
    };
    let submitted = store::submit_in(&mut tx, settings, &submitter, submission).await?;
    sqlx::query("UPDATE knowledge_webhook_deliveries SET document_id = $2 WHERE delivery_id = $1")
        .bind(delivery_id)
        .bind(submitted.document_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(submitted)).into_response())
}
