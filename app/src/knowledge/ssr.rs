//! Server-side glue of the knowledge server functions: the role checks, input parsing, and
//! conversion of the backend's documents, reviews, chunks and search hits into display text.

use backend::accounts::{Principal, Role};
use backend::http::ApiError;
use backend::knowledge::review::ReviewDecision;
use backend::knowledge::search::SearchHit;
use backend::knowledge::store::{ChunkView, DocumentView, ListFilter};
use backend::knowledge::{Authority, Stage};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    stage_label, ChunkRow, DocumentDetail, DocumentRow, FlagRow, QueueRow, ReviewRow, SearchResult,
    StageStep, APPROVALS_NEEDED, AUTHORITIES, DEFAULT_AUTHORITY, LIST_FILTERS, MAX_QUERY_CHARS,
};
use crate::account::ssr::invalid_value as invalid;
pub use crate::account::ssr::Call;

// The backend's list clamps its limit to 200, so a larger page would silently shrink.
const _: () = assert!(super::PAGE_SIZE <= 200 && super::QUEUE_LIMIT <= 200);

/// Maximum length of a chunk excerpt on the search results, in characters.
const EXCERPT_CHARS: usize = 280;

/// Finding kinds that extraction records about removed or unreadable content; any other kind
/// is a category of the injection screening.
const EXTRACTION_KINDS: [&str; 8] = [
    "scripts_removed",
    "boilerplate_removed",
    "front_matter_removed",
    "template_tags_removed",
    "invalid_utf8_replaced",
    "pages_without_text",
    "pages_unreadable",
    "deleted_text_skipped",
];

/// Finding kind of hidden text removed at extraction.
const HIDDEN_TEXT_KIND: &str = "hidden_text_removed";

/// Submitter shown for documents that a webhook or a scheduled refresh submitted.
const AUTOMATIC_SUBMITTER: &str = "webhook or refresh";

/// Returns 403 unless the caller of `call` may review documents: approvers and admins.
pub fn require_reviewer<R>(call: &Call<R>) -> Result<(), ApiError> {
    call.caller
        .principal()
        .require_any(&[Role::Approver, Role::Admin])
}

/// Builds the 404 of a document that the tenant does not have.
pub fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!(
        "knowledge document {id} not found; open documents from the Knowledge page"
    ))
}

/// Parses a document id, naming the field and the value when it is not a UUID.
pub fn parse_id(field: &str, raw: &str) -> Result<Uuid, ApiError> {
    backend::ids::parse_uuid(field, raw).map_err(|_| {
        invalid(
            field,
            raw,
            "a document id is a UUID such as 0190f1c2-7a3b-7c4d-8e5f-0123456789ab; open \
             documents from the Knowledge page",
        )
    })
}

/// Parses the list's status filter; empty means all.
pub fn parse_filter(raw: Option<&str>) -> Result<ListFilter, ApiError> {
    match raw.map(str::trim).unwrap_or("") {
        "" | "all" => Ok(ListFilter::All),
        "processing" => Ok(ListFilter::Processing),
        "in_review" => Ok(ListFilter::InReview),
        "published" => Ok(ListFilter::Published),
        other => {
            let choices: Vec<&str> = LIST_FILTERS.iter().map(|(value, _)| *value).collect();
            Err(invalid(
                "status",
                other,
                &format!("choose one of {}", choices.join(", ")),
            ))
        }
    }
}

/// Parses the id of the last document of the previous page; empty means the first page.
pub fn parse_cursor(raw: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    match raw.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => parse_id("cursor", text).map(Some),
    }
}

/// Checks a search query: 1 to [`MAX_QUERY_CHARS`] characters once trimmed.
pub fn parse_query(raw: &str) -> Result<String, ApiError> {
    let query = raw.trim();
    if query.is_empty() {
        return Err(invalid(
            "q",
            raw,
            "type a few words to search for, e.g. exit signs",
        ));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid(
            "q",
            raw,
            &format!("shorten the search to at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(query.to_string())
}

/// Parses the decision sent by the approve and reject buttons.
pub fn parse_decision(raw: &str) -> Result<ReviewDecision, ApiError> {
    match raw.trim() {
        "approve" => Ok(ReviewDecision::Approve),
        "reject" => Ok(ReviewDecision::Reject),
        other => Err(invalid(
            "decision",
            other,
            "press Approve or Reject; the decision is approve or reject",
        )),
    }
}

/// Parses a score field: empty means no score, otherwise a number from 0 to 1.
pub fn parse_score(field: &str, raw: &str) -> Result<Option<f32>, ApiError> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f32>() {
        Ok(score) if (0.0..=1.0).contains(&score) => Ok(Some(score)),
        _ => Err(invalid(
            field,
            raw,
            &format!("{field} is a number from 0 to 1, such as 0.85"),
        )),
    }
}

/// Parses an authority name; empty means [`DEFAULT_AUTHORITY`].
pub fn parse_authority(raw: &str) -> Result<Authority, ApiError> {
    let text = match raw.trim() {
        "" => DEFAULT_AUTHORITY,
        text => text,
    };
    Authority::parse(text).ok_or_else(|| {
        invalid(
            "authority",
            raw,
            &format!("choose one of {}", AUTHORITIES.join(", ")),
        )
    })
}

/// Formats a time as `YYYY-MM-DD HH:MM UTC`.
fn format_minute(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_else(|_| at.to_string())
}

/// Describes how long ago `at` was, in the largest whole unit.
fn age(at: OffsetDateTime) -> String {
    let seconds = (OffsetDateTime::now_utc() - at).whole_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3_600 => format!("{} min ago", seconds / 60),
        3_600..86_400 => format!("{} h ago", seconds / 3_600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

/// Joins headings outermost first, e.g. `§ 1910.37 › (a)`.
fn section_text(path: &[String]) -> String {
    path.join(" › ")
}

/// Returns the first [`EXCERPT_CHARS`] characters of `text`, marking a cut with `…`.
fn excerpt(text: &str) -> String {
    let mut cut: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().count() > EXCERPT_CHARS {
        cut.push('…');
    }
    cut
}

/// Formats a size in bytes with the largest fitting unit of 1,000.
fn size_text(bytes: i64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// Describes the current stage and what it is doing, e.g. `Embed: embedded 4 of 9 chunks`.
fn progress_text(document: &DocumentView) -> String {
    let stage = stage_label(&document.stage);
    match (document.status.as_str(), document.progress_note.as_deref()) {
        ("failed", _) => format!("{stage}: failed"),
        ("in_review", _) => format!("{stage}: waiting for reviewers"),
        (_, Some(note)) if !note.is_empty() => format!("{stage}: {note}"),
        ("processing", _) => format!("{stage}: queued"),
        _ => stage,
    }
}

/// Converts a document to a list row.
pub fn row(document: &DocumentView) -> DocumentRow {
    let source = document
        .url
        .clone()
        .or_else(|| document.file_name.clone())
        .unwrap_or_else(|| document.source_kind.clone());
    DocumentRow {
        id: document.id.to_string(),
        title: document.title.clone(),
        source,
        source_kind: document.source_kind.clone(),
        authority: document.authority.clone(),
        status: document.status.clone(),
        stage: document.stage.clone(),
        progress: document.progress.clamp(0, 100),
        progress_text: progress_text(document),
        version: document.version,
        created_at: format_minute(document.created_at),
        age: age(document.created_at),
    }
}

/// Converts a search hit for the results list.
pub fn search_result(hit: SearchHit) -> SearchResult {
    SearchResult {
        chunk_id: hit.chunk_id.to_string(),
        document_id: hit.document_id.to_string(),
        title: hit.document_title,
        section: section_text(&hit.section_path),
        excerpt: excerpt(&hit.text),
        authority: hit.authority,
        score: format!("{:.4}", hit.score),
    }
}

/// Converts the findings the pipeline stored, injection-like instructions first, then hidden
/// text, then the rest, each group in the order found.
pub fn flags(stored: &Value) -> Vec<FlagRow> {
    let mut rows: Vec<FlagRow> = stored
        .as_array()
        .map(|entries| entries.iter().map(flag_row).collect())
        .unwrap_or_default();
    let rank = |row: &FlagRow| match row.level.as_str() {
        "injection" => 0,
        "hidden" => 1,
        _ => 2,
    };
    rows.sort_by_key(rank);
    rows
}

fn flag_row(entry: &Value) -> FlagRow {
    let kind = entry["kind"].as_str().unwrap_or("finding");
    let (level, label) = if kind == HIDDEN_TEXT_KIND {
        ("hidden", "Hidden text removed".to_string())
    } else if EXTRACTION_KINDS.contains(&kind) {
        ("info", stage_label(&kind.replace('_', " ")))
    } else {
        (
            "injection",
            format!("Injection-like instruction ({})", kind.replace('_', " ")),
        )
    };
    let section = entry["section"]
        .as_array()
        .map(|headings| {
            let headings: Vec<String> = headings
                .iter()
                .filter_map(|heading| heading.as_str().map(str::to_string))
                .collect();
            section_text(&headings)
        })
        .unwrap_or_default();
    FlagRow {
        level: level.to_string(),
        label,
        detail: entry["detail"].as_str().unwrap_or_default().to_string(),
        section,
    }
}

/// Lists every stage with its state: those before the current stage are done, and a document
/// that reached the publish stage (published, then perhaps superseded or retired) has done
/// them all.
pub fn stages(stage: &str, status: &str) -> Vec<StageStep> {
    let current = Stage::parse(stage).unwrap_or(Stage::Fetch);
    Stage::ALL
        .iter()
        .map(|&each| {
            let state = if current == Stage::Publish || each.starts_at() < current.starts_at() {
                "done"
            } else if each != current {
                "todo"
            } else if status == "failed" {
                "failed"
            } else {
                "current"
            };
            StageStep {
                stage: each.as_str().to_string(),
                state: state.to_string(),
            }
        })
        .collect()
}

fn submitter(document: &DocumentView) -> String {
    document
        .submitted_by
        .clone()
        .unwrap_or_else(|| AUTOMATIC_SUBMITTER.to_string())
}

fn approvals(document: &DocumentView) -> i64 {
    let approving = document
        .reviews
        .iter()
        .filter(|review| review.decision == "approve");
    approving.count() as i64
}

/// Converts a document in review for the queue.
pub fn queue_row(document: &DocumentView) -> QueueRow {
    QueueRow {
        row: row(document),
        submitted_by: submitter(document),
        approvals: approvals(document),
        approved_by: document
            .reviews
            .iter()
            .filter(|review| review.decision == "approve")
            .map(|review| review.reviewer.clone())
            .collect(),
        flags: flags(&document.flags),
        chunk_count: document.chunk_count,
    }
}

fn review_row(review: &backend::knowledge::store::ReviewView) -> ReviewRow {
    let scores: Vec<String> = [
        ("accuracy", review.accuracy),
        ("completeness", review.completeness),
        ("relevance", review.relevance),
    ]
    .iter()
    .filter_map(|(name, score)| score.map(|score| format!("{name} {score:.2}")))
    .collect();
    ReviewRow {
        reviewer: review.reviewer.clone(),
        decision: review.decision.clone(),
        scores: scores.join(" · "),
        comment: review.comment.clone(),
        at: format_minute(review.created_at),
    }
}

fn facts(document: &DocumentView) -> Vec<(String, String)> {
    let mut facts = vec![("Version".to_string(), document.version.to_string())];
    let optional = [
        ("Format", document.format.clone()),
        ("Content type", document.content_type.clone()),
        ("Size", document.byte_size.map(size_text)),
        ("SHA-256", document.sha256.clone()),
        ("Published", document.published_at.map(format_minute)),
    ];
    for (label, value) in optional {
        if let Some(value) = value {
            facts.push((label.to_string(), value));
        }
    }
    facts
}

/// Converts a document for its page, with the actions open to `principal`.
pub fn detail(
    document: &DocumentView,
    chunks: Option<Vec<ChunkView>>,
    principal: &Principal,
) -> DocumentDetail {
    let status = document.status.as_str();
    let is_submitter = document.submitted_by.as_deref() == Some(principal.email.as_str());
    let reviewer = principal.has(Role::Approver) || principal.has(Role::Admin);
    let reviewed = document
        .reviews
        .iter()
        .any(|review| review.reviewer == principal.email);
    let approvals = approvals(document);

    let mut notes = Vec::new();
    if status == "in_review" && reviewer {
        if is_submitter {
            notes.push(
                "You submitted this document, so two other people must review it.".to_string(),
            );
        } else if reviewed {
            notes.push(
                "You have reviewed this document; a second review by you would not count."
                    .to_string(),
            );
        }
    }
    if status == "in_review" && !reviewer {
        notes.push("Approvers and admins review documents before they are published.".to_string());
    }

    DocumentDetail {
        row: row(document),
        submitted_by: submitter(document),
        facts: facts(document),
        error: document.error.clone(),
        job_status: document.job.as_ref().map(|job| job.status.clone()),
        stages: stages(&document.stage, status),
        flags: flags(&document.flags),
        reviews: document.reviews.iter().map(review_row).collect(),
        approvals,
        chunk_count: document.chunk_count,
        chunks: chunks.map(|chunks| {
            chunks
                .into_iter()
                .map(|chunk| ChunkRow {
                    ordinal: chunk.ordinal,
                    section: section_text(&chunk.section_path),
                    text: chunk.text,
                })
                .collect()
        }),
        can_review: status == "in_review" && reviewer && !is_submitter && !reviewed,
        scores_required: approvals == 0,
        can_retire: principal.has(Role::Admin) && matches!(status, "published" | "in_review"),
        is_admin: principal.has(Role::Admin),
        notes,
    }
}

// Both sides count the approvals that publish a document.
const _: () = assert!(APPROVALS_NEEDED == backend::knowledge::review::REQUIRED_APPROVALS);

// The backend's search clamps `k`, so more results would silently shrink.
const _: () = assert!(super::SEARCH_RESULTS <= backend::knowledge::search::MAX_K);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parsers_name_invalid_values() {
        let errors = [
            parse_filter(Some("done")).expect_err("unknown status"),
            parse_cursor(Some("abc")).expect_err("cursor is not a UUID"),
            parse_query("   ").expect_err("empty query"),
            parse_decision("maybe").expect_err("unknown decision"),
            parse_score("accuracy", "1.5").expect_err("score above 1"),
            parse_score("relevance", "high").expect_err("score is not a number"),
            parse_authority("official-ish").expect_err("unknown authority"),
            parse_id("id", "12").expect_err("id is not a UUID"),
        ];
        let expected = [
            "status \"done\"",
            "cursor \"abc\"",
            "q \"   \"",
            "decision \"maybe\"",
            "accuracy \"1.5\"",
            "relevance \"high\"",
            "authority \"official-ish\"",
            "id \"12\"",
        ];
        for (error, expected) in errors.iter().zip(expected) {
            let message = error.to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn parsers_read_valid_values() {
        assert_eq!(parse_filter(None).unwrap(), ListFilter::All);
        assert_eq!(
            parse_filter(Some("in_review")).unwrap(),
            ListFilter::InReview
        );
        assert_eq!(parse_cursor(Some(" ")).unwrap(), None);
        assert_eq!(parse_query("  exit signs ").unwrap(), "exit signs");
        assert_eq!(parse_score("accuracy", "").unwrap(), None);
        assert_eq!(parse_score("accuracy", "0.85").unwrap(), Some(0.85));
        assert_eq!(parse_score("accuracy", "1").unwrap(), Some(1.0));
        assert_eq!(parse_authority("").unwrap(), Authority::Medium);
        assert_eq!(parse_authority("official").unwrap(), Authority::Official);
        assert!(parse_query(&"x".repeat(MAX_QUERY_CHARS + 1)).is_err());
    }

    #[test]
    fn flags_put_injections_first() {
        let stored = json!([
            {"kind": "scripts_removed", "elements": 1, "detail": "scripts and styles removed: 1 elements"},
            {"kind": "hidden_text_removed", "chars": 12, "detail": "hidden text removed: 12 characters"},
            {"kind": "instruction_override", "detail": "instruction_override: \"ignore previous instructions\"", "section": ["Dock", "Rules"]},
        ]);
        let rows = flags(&stored);
        let levels: Vec<&str> = rows.iter().map(|row| row.level.as_str()).collect();
        assert_eq!(levels, ["injection", "hidden", "info"]);
        assert_eq!(
            rows[0].label,
            "Injection-like instruction (instruction override)"
        );
        assert_eq!(rows[0].section, "Dock › Rules");
        assert_eq!(rows[1].label, "Hidden text removed");
        assert_eq!(rows[2].label, "Scripts removed");
        assert!(flags(&json!({})).is_empty());
    }

    #[test]
    fn stages_mark_the_current_one() {
        let states = |stage: &str, status: &str| -> Vec<String> {
            stages(stage, status)
                .into_iter()
                .map(|step| step.state)
                .collect()
        };
        assert_eq!(
            states("embed", "processing"),
            ["done", "done", "done", "done", "current", "todo", "todo", "todo"]
        );
        assert_eq!(
            states("extract", "failed"),
            ["done", "failed", "todo", "todo", "todo", "todo", "todo", "todo"]
        );
        assert_eq!(states("publish", "published"), ["done"; 8]);
        assert_eq!(states("review", "in_review")[6], "current");
    }

    #[test]
    fn excerpt_cuts_long_text_at_characters() {
        let long = "é".repeat(EXCERPT_CHARS + 5);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt("short"), "short");
    }

    #[test]
    fn size_text_picks_the_unit() {
        assert_eq!(size_text(999), "999 bytes");
        assert_eq!(size_text(4_102), "4.1 kB");
        assert_eq!(size_text(25_000_000), "25.0 MB");
    }
}
