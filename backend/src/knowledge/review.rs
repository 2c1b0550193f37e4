//! Two-person review and publication of knowledge documents.
//!
//! Two distinct reviewers, neither of them the submitter, must approve a document before its
//! chunks become searchable; the first approval carries accuracy, completeness and relevance
//! scores. Any rejection ends the review. Publishing a new version supersedes the source's
//! previously published version in the same transaction.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::accounts::Role;
use crate::audit;
use crate::changes::store::Caller;
use crate::http::ApiError;

/// Approvals a document needs before it is published.
pub const REQUIRED_APPROVALS: i64 = 2;

/// A reviewer's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// The document is accurate and may be cited.
    Approve,
    /// The document must not be published.
    Reject,
}

impl ReviewDecision {
    fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }
}

/// A review as submitted.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    /// approve or reject.
    pub decision: ReviewDecision,
    /// Accuracy score, 0-1, required on the first approval.
    pub accuracy: Option<f32>,
    /// Completeness score, 0-1, required on the first approval.
    pub completeness: Option<f32>,
    /// Relevance score to the tenant's sites, 0-1, required on the first approval.
    pub relevance: Option<f32>,
    /// Free text, at most 2,000 characters; required when rejecting.
    pub comment: Option<String>,
}

/// The document's state after a review.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewOutcome {
    /// The document's status: in_review, published or rejected.
    pub status: String,
    /// Distinct approvals so far.
    pub approvals: i64,
    /// True when this request's review was recorded, false when the same reviewer had
    /// already reviewed (the earlier review is kept).
    pub recorded: bool,
    /// The version this publication superseded, if any.
    pub superseded: Option<Uuid>,
}

fn check_scores(review: &NewReview, first_approval: bool) -> Result<(), ApiError> {
    for (field, value) in [
        ("accuracy", review.accuracy),
        ("completeness", review.completeness),
        ("relevance", review.relevance),
    ] {
        match value {
            Some(score) if !(0.0..=1.0).contains(&score) || score.is_nan() => {
                return Err(ApiError::invalid(
                    field,
                    &score.to_string(),
                    format!("{field} must be between 0 and 1"),
                ));
            }
            None if first_approval && review.decision == ReviewDecision::Approve => {
                return Err(ApiError::invalid(
                    field,
                    "",
                    format!("the first approval must score {field} between 0 and 1"),
                ));
            }
            _ => {}
        }
    }
    if let Some(comment) = &review.comment {
        if comment.chars().count() > 2000 {
            return Err(ApiError::invalid(
                "comment",
                &comment.chars().take(40).collect::<String>(),
                "comment must be at most 2,000 characters",
            ));
        }
    }
    if review.decision == ReviewDecision::Reject
        && review
            .comment
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
    {
        return Err(ApiError::invalid(
            "comment",
            "",
            "say why in the comment when rejecting a document",
        ));
    }
    Ok(())
}

/// Records `caller`'s review of a document and publishes it on the second distinct approval.
///
/// The document row is locked for the whole decision, so two concurrent reviews are counted
/// one after the other. A second review by the same person is a no-op that reports
/// `recorded: false`, and the primary key on (document, reviewer) backs this up.
pub async fn review(
    pool: &PgPool,
    caller: &Caller,
    document_id: Uuid,
    review: &NewReview,
) -> Result<ReviewOutcome, ApiError> {
    caller
        .principal
        .require_any(&[Role::Approver, Role::Admin])?;
    let tenant = caller.principal.tenant_id.0;
    let reviewer = caller.principal.user_id.0;

    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT status, submitted_by, source_id FROM knowledge_documents \
          WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(document_id)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("knowledge document {document_id} not found")))?;
    let status: String = row.get("status");
    let submitted_by: Option<Uuid> = row.get("submitted_by");
    let source_id: Uuid = row.get("source_id");

    let earlier: Option<String> = sqlx::query_scalar(
        "SELECT decision FROM knowledge_reviews WHERE document_id = $1 AND reviewer_id = $2",
    )
    .bind(document_id)
    .bind(reviewer)
    .fetch_optional(&mut *tx)
    .await?;
    if earlier.is_some() {
        let approvals = count_approvals(&mut tx, document_id).await?;
        return Ok(ReviewOutcome {
            status,
            approvals,
            recorded: false,
            superseded: None,
        });
    }
    if status != "in_review" {
        return Err(ApiError::Conflict {
            message: format!(
                "knowledge document {document_id} is {status}; only documents in review can be reviewed"
            ),
            existing_id: None,
        });
    }
    if submitted_by == Some(reviewer) {
        return Err(ApiError::Forbidden(
            "you submitted this document, so two other people must review it".to_string(),
        ));
    }

    let approvals_before = count_approvals(&mut tx, document_id).await?;
    check_scores(review, approvals_before == 0)?;

    sqlx::query(
        "INSERT INTO knowledge_reviews (document_id, reviewer_id, tenant_id, decision, accuracy, \
           completeness, relevance, comment, ip, user_agent, correlation_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(document_id)
    .bind(reviewer)
    .bind(tenant)
    .bind(review.decision.as_str())
    .bind(review.accuracy)
    .bind(review.completeness)
    .bind(review.relevance)
    .bind(review.comment.as_deref().map(str::trim))
    .bind(&caller.client.ip)
    .bind(&caller.client.user_agent)
    .bind(&caller.correlation_id)
    .execute(&mut *tx)
    .await?;

    let detail = json!({
        "decision": review.decision.as_str(),
        "accuracy": review.accuracy,
        "completeness": review.completeness,
        "relevance": review.relevance,
        "comment": review.comment,
    });
    audit::record(
        &mut tx,
        &caller.audit_event(
            "knowledge_document",
            "knowledge.reviewed",
            document_id,
            detail,
        ),
    )
    .await?;

    let mut outcome = ReviewOutcome {
        status: status.clone(),
        approvals: approvals_before,
        recorded: true,
        superseded: None,
    };
    match review.decision {
        ReviewDecision::Reject => {
            sqlx::query(
                "UPDATE knowledge_documents SET status = 'rejected', updated_at = now() WHERE id = $1",
            )
            .bind(document_id)
            .execute(&mut *tx)
            .await?;
            outcome.status = "rejected".to_string();
        }
        ReviewDecision::Approve => {
            outcome.approvals += 1;
            if outcome.approvals >= REQUIRED_APPROVALS {
                outcome.superseded = publish(&mut tx, document_id, source_id).await?;
                outcome.status = "published".to_string();
                let detail = json!({ "superseded": outcome.superseded });
                audit::record(
                    &mut tx,
                    &caller.audit_event(
                        "knowledge_document",
                        "knowledge.published",
                        document_id,
                        detail,
                    ),
                )
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(outcome)
}

async fn count_approvals(
    conn: &mut sqlx::PgConnection,
    document_id: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM knowledge_reviews WHERE document_id = $1 AND decision = 'approve'",
    )
    .bind(document_id)
    .fetch_one(conn)
    .await
}

/// Makes a document's chunks searchable and supersedes the source's earlier published version.
async fn publish(
    conn: &mut sqlx::PgConnection,
    document_id: Uuid,
    source_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    let superseded: Option<Uuid> = sqlx::query_scalar(
        "UPDATE knowledge_documents SET status = 'superseded', updated_at = now() \
          WHERE source_id = $1 AND status = 'published' AND id <> $2 RETURNING id",
    )
    .bind(source_id)
    .bind(document_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(old) = superseded {
        sqlx::query("UPDATE knowledge_chunks SET searchable = false WHERE document_id = $1")
            .bind(old)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "UPDATE knowledge_documents SET status = 'published', stage = 'publish', progress = 100, \
                progress_note = NULL, published_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(document_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE knowledge_chunks SET searchable = true WHERE document_id = $1")
        .bind(document_id)
        .execute(&mut *conn)
        .await?;
    Ok(superseded)
}
