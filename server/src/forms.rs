//! Plain HTML form routes for what a server function cannot take. The knowledge upload posts a
//! `multipart/form-data` body as large as a document may be, while server functions read whole
//! bodies under the JSON limit.
//!
//! Each route responds like a page: 303 to the next page on success, and 303 back to the form's
//! page with the error sentence in the query on failure, so the forms work without JavaScript.

use axum::extract::multipart::MultipartError;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Extension, Router};
use backend::changes::store::Caller;
use backend::http::{AdminRole, ApiError, Authorized, ClientMeta, CorrelationId};
use backend::knowledge::store::{self, NewSource, Submission, Submitter};
use backend::knowledge::Authority;
use backend::AppState;

use crate::api::knowledge::read_upload_parts;
use app::knowledge::{
    document_path, upload_error_target, AUTHORITIES, DEFAULT_AUTHORITY, UPLOAD_PATH,
};

/// Largest request body the upload route reads, in bytes: the document limit plus room for the
/// multipart framing and the other fields.
#[derive(Debug, Clone, Copy)]
struct UploadBodyLimit(usize);

/// Builds the form routes; `upload_body_limit` caps the upload's whole body, in bytes.
pub fn router(upload_body_limit: usize) -> Router<AppState> {
    Router::new()
        .route(UPLOAD_PATH, post(upload))
        .layer(DefaultBodyLimit::max(upload_body_limit))
        .layer(Extension(UploadBodyLimit(upload_body_limit)))
}

/// Submits an uploaded document (admins) and sends the browser to its page, or back to the
/// Knowledge page with the error. A visitor who is not signed in goes to the sign-in page.
async fn upload(
    caller: Result<Authorized<AdminRole>, ApiError>,
    State(state): State<AppState>,
    Extension(UploadBodyLimit(body_limit)): Extension<UploadBodyLimit>,
    client: ClientMeta,
    correlation: CorrelationId,
    request: Request,
) -> Response {
    let caller = match caller {
        Ok(caller) => caller,
        Err(ApiError::Unauthenticated) => return Redirect::to("/login").into_response(),
        Err(error) => return back_with_error(error, &correlation),
    };

    // A body announced as too large is refused before it is read.
    let length = crate::middleware::declared_length(request.headers());
    if let Some(length) = length.filter(|length| *length > body_limit) {
        return back_with_error(too_large_body(length, body_limit), &correlation);
    }

    let limit = state.settings.knowledge.max_document_bytes;
    let submission = match read_form(request, &state, limit).await {
        Ok(submission) => submission,
        Err(error) => return back_with_error(error, &correlation),
    };
    let file_bytes = match &submission.source {
        NewSource::Upload { bytes, .. } => bytes.len(),
        NewSource::Url(_) => 0,
    };

    let caller = Caller::new(caller.principal(), &client, &correlation);
    let submitted = store::submit(
        &state.pool,
        &state.settings.knowledge,
        &Submitter::User(&caller),
        submission,
    )
    .await;
    match submitted {
        Ok(submitted) => {
            tracing::info!(
                document_id = %submitted.document_id,
                job_id = %submitted.job_id,
                bytes = file_bytes,
                "knowledge document uploaded from the Knowledge page"
            );
            Redirect::to(&document_path(&submitted.document_id.to_string())).into_response()
        }
        Err(error) => back_with_error(error, &correlation),
    }
}

/// Reads the form's parts: `file` (required), `title` and `authority`. The file is refused
/// as soon as its bytes pass `limit`, before the rest of it arrives.
async fn read_form(
    request: Request,
    state: &AppState,
    limit: usize,
) -> Result<Submission, ApiError> {
    let multipart = Multipart::from_request(request, state)
        .await
        .map_err(|rejection| {
            ApiError::invalid(
                "body",
                "",
                format!(
                    "the upload form could not be read ({rejection}); send it from the \
                     Knowledge page as multipart/form-data"
                ),
            )
        })?;
    // Browsers send an empty file name when no file was chosen.
    let check_name = |name: &str| {
        if name.is_empty() {
            return Err(no_file());
        }
        store::check_file_name(name)
    };
    let parts = read_upload_parts(multipart, limit, check_name, broken_body).await?;

    let (file_name, bytes) = parts.file.ok_or_else(no_file)?;
    Ok(Submission {
        source: NewSource::Upload { file_name, bytes },
        title: parts.title.filter(|title| !title.trim().is_empty()),
        authority: parse_authority(parts.authority.as_deref().unwrap_or(""))?,
    })
}

fn no_file() -> ApiError {
    ApiError::invalid(
        "file",
        "",
        "no file was chosen; choose the document to upload, then press Upload",
    )
}

/// Parses the authority field; empty means the default.
fn parse_authority(raw: &str) -> Result<Authority, ApiError> {
    let text = match raw.trim() {
        "" => DEFAULT_AUTHORITY,
        text => text,
    };
    Authority::parse(text).ok_or_else(|| {
        ApiError::invalid(
            "authority",
            raw,
            format!(
                "authority {raw:?} is invalid; choose one of {}",
                AUTHORITIES.join(", ")
            ),
        )
    })
}

/// Converts a malformed upload form into its error.
fn broken_body(error: MultipartError) -> ApiError {
    ApiError::invalid(
        "body",
        "",
        format!("the upload form could not be read: {error}; choose the file again and retry"),
    )
}

fn too_large_body(length: usize, limit: usize) -> ApiError {
    ApiError::TooLarge(format!(
        "the upload is {length} bytes, over the limit of {limit} bytes for a document and its \
         form fields; split the document or raise KNOWLEDGE_MAX_DOCUMENT_BYTES"
    ))
}

/// Sends the browser back to the Knowledge page with the error's sentence. An internal error
/// is logged, and the page names the correlation id to quote instead of its cause.
fn back_with_error(error: ApiError, correlation: &CorrelationId) -> Response {
    let message = match &error {
        ApiError::Internal(cause) => {
            tracing::error!(error = ?cause, "knowledge upload failed");
            format!(
                "internal error; try again, and if it fails again quote correlation id {} when \
                 reporting it",
                correlation.0
            )
        }
        other => {
            let message = other.body().error;
            tracing::info!(status = other.status().as_u16(), error = %message, "knowledge upload rejected");
            message
        }
    };
    Redirect::to(&upload_error_target(&message)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn authority_defaults_and_names_bad_values() {
        assert_eq!(parse_authority(" ").unwrap(), Authority::Medium);
        assert_eq!(parse_authority("official").unwrap(), Authority::Official);
        let message = parse_authority("top").unwrap_err().to_string();
        assert!(
            message.contains("authority \"top\" is invalid"),
            "{message}"
        );
        assert!(message.contains("official, high, medium, low"), "{message}");
    }

    #[test]
    fn errors_return_to_the_knowledge_page() {
        let correlation = CorrelationId("req-1".to_string());
        let response = back_with_error(no_file(), &correlation);
        assert_eq!(response.status(), axum::http::StatusCode::SEE_OTHER);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert!(
            location.starts_with("/knowledge?error=no%20file%20was%20chosen"),
            "{location}"
        );

        let internal = back_with_error(
            ApiError::Internal(anyhow::anyhow!("disk full")),
            &correlation,
        );
        let location = internal.headers()[header::LOCATION].to_str().unwrap();
        assert!(location.contains("req-1"), "{location}");
        assert!(!location.contains("disk"), "{location}");
    }
}
