//! Server-side glue of the change-set server functions: the role check, input parsing, and
//! conversion of the backend's change sets and audit entries into display text.

pub(crate) mod rows;

use std::cmp::Reverse;

use backend::accounts::{Principal, Role};
use backend::audit::AuditEntry;
use backend::changes::risk::Tier;
use backend::changes::store::{ChangeSet, ChangeSetSummary, Decision, RollbackOutcome};
use backend::changes::REQUEST_LIFETIME;
use backend::http::ApiError;
use leptos::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

pub use rows::site_view;
use rows::{conflict_row, operation_view};

use super::{
    is_site_code, AuditRow, ChangeSetDetail, ChangeSetRow, DecisionRow, RollbackResult, STATUSES,
};
use crate::account::ssr::invalid_value as invalid;
pub use crate::account::ssr::Call;

// The backend's list clamps its limit to 200, so a larger page size would silently shrink.
const _: () = assert!(super::LIST_LIMIT <= 200);

/// Parses a change set id, naming the field and the value when it is not a UUID.
pub fn parse_id(field: &str, raw: &str) -> Result<Uuid, ApiError> {
    backend::ids::parse_uuid(field, raw).map_err(|_| {
        invalid(
            field,
            raw,
            "a change set id is a UUID such as 0190f1c2-7a3b-7c4d-8e5f-0123456789ab; open change \
             sets from the Approvals or My changes lists",
        )
    })
}

/// Checks a site code against the rule the database enforces.
pub fn parse_site_code(raw: &str) -> Result<String, ApiError> {
    let code = raw.trim();
    if is_site_code(code) {
        Ok(code.to_string())
    } else {
        Err(invalid(
            "code",
            raw,
            "a site code has 1-32 characters of A-Z, 0-9, '_' and '-' and starts with a letter \
             or digit, e.g. WH-01",
        ))
    }
}

/// Parses the status filter; empty means any status.
pub fn parse_status(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw.map(str::trim).filter(|text| !text.is_empty()) {
        None | Some("any") => Ok(None),
        Some(status) if STATUSES.contains(&status) => Ok(Some(status.to_string())),
        Some(other) => Err(invalid(
            "status",
            other,
            &format!("choose any or one of {}", STATUSES.join(", ")),
        )),
    }
}

/// Parses the inbox order: `oldest` (the default) or `risk`. Returns whether to sort by risk.
pub fn parse_sort(raw: Option<&str>) -> Result<bool, ApiError> {
    match raw.map(str::trim).filter(|text| !text.is_empty()) {
        None | Some("oldest") => Ok(false),
        Some("risk") => Ok(true),
        Some(other) => Err(invalid("sort", other, "choose oldest or risk")),
    }
}

/// Parses the decision sent by the approve and reject buttons.
pub fn parse_decision(raw: &str) -> Result<Decision, ApiError> {
    match raw.trim() {
        "approve" => Ok(Decision::Approve),
        "reject" => Ok(Decision::Reject),
        other => Err(invalid(
            "decision",
            other,
            "press Approve or Reject; the decision is approve or reject",
        )),
    }
}

/// Formats a time as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn format_minute(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_else(|_| at.to_string())
}

/// Formats a time as `YYYY-MM-DD HH:MM:SS UTC`.
fn format_second(at: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
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

/// Names the approvals a tier needs.
fn tier_words(tier: Tier) -> &'static str {
    match tier {
        Tier::SelfApply => "no approval",
        Tier::OneApprover => "one approval",
        Tier::TwoApprovers => "two approvals",
    }
}

/// Converts a list entry to a display row.
// NOTE: the list query returns no expiry, so it is derived from the creation time. The
// backend sets both when it inserts the row, milliseconds apart, which minutes cannot show.
pub fn row(summary: ChangeSetSummary) -> ChangeSetRow {
    let expires_at = summary.created_at + REQUEST_LIFETIME;
    list_row(
        summary.id,
        summary.title,
        summary.status,
        summary.requested_by,
        summary.risk_score,
        summary.tier,
        summary.operations,
        summary.created_at,
        expires_at,
    )
}

#[allow(clippy::too_many_arguments)]
fn list_row(
    id: Uuid,
    title: String,
    status: String,
    requested_by: String,
    risk_score: f64,
    tier: Tier,
    operations: i32,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> ChangeSetRow {
    let waiting = matches!(status.as_str(), "pending" | "approved");
    ChangeSetRow {
        id: id.to_string(),
        title,
        overdue: waiting && expires_at <= OffsetDateTime::now_utc(),
        status,
        requested_by,
        risk: format!("{risk_score:.2}"),
        tier: tier_words(tier).to_string(),
        operations,
        created_at: format_minute(created_at),
        age: age(created_at),
        expires_at: format_minute(expires_at),
    }
}

/// Keeps the change sets that `caller_email` did not request, oldest first (the nearest
/// expiry), or riskiest first when `by_risk`.
pub fn inbox(
    mut summaries: Vec<ChangeSetSummary>,
    caller_email: &str,
    by_risk: bool,
) -> Vec<ChangeSetRow> {
    summaries.retain(|summary| summary.requested_by != caller_email);
    // Scores have three decimals, so whole thousandths order them exactly.
    let risk = |summary: &ChangeSetSummary| (summary.risk_score * 1000.0).round() as i64;
    if by_risk {
        summaries.sort_by_key(|summary| (Reverse(risk(summary)), summary.created_at));
    } else {
        summaries.sort_by_key(|summary| (summary.created_at, Reverse(risk(summary))));
    }
    summaries.into_iter().map(row).collect()
}

/// Converts a change set for the detail page, with the actions open to `principal`.
pub fn detail(change_set: ChangeSet, principal: &Principal) -> ChangeSetDetail {
    let now = OffsetDateTime::now_utc();
    let is_requester = principal.email == change_set.requested_by;
    let status = change_set.status.as_str();
    let unexpired = change_set.expires_at > now;
    let own_decision = change_set
        .decisions
        .iter()
        .find(|decision| {
            decision.decided_by == principal.email && decision.revision == change_set.revision
        })
        .map(|decision| decision.decision.clone());

    let can_decide = principal.has(Role::Approver)
        && !is_requester
        && unexpired
        && matches!(status, "pending" | "approved")
        && own_decision.is_none();
    let can_apply = principal.has(Role::Manager)
        && is_requester
        && unexpired
        && (status == "approved" || (status == "pending" && change_set.tier == Tier::SelfApply));
    let can_rollback = principal.has(Role::Manager)
        && is_requester
        && status == "applied"
        && change_set.rollback_of.is_none()
        && change_set.rolled_back_by.is_none();

    let notes = caller_notes(&change_set, principal, own_decision.as_deref());
    let decisions = change_set
        .decisions
        .iter()
        .map(|decision| DecisionRow {
            decided_by: decision.decided_by.clone(),
            decision: decision.decision.clone(),
            comment: decision.comment.clone(),
            revision: decision.revision,
            decided_at: format_minute(decision.decided_at),
        })
        .collect();
    let operations = change_set
        .preview
        .items
        .iter()
        .map(operation_view)
        .collect();

    ChangeSetDetail {
        revision: change_set.revision,
        explanation: change_set.preview.assessment.explanation.clone(),
        approvals: change_set.approvals,
        approvals_needed: change_set.tier.approvals_needed(),
        approvals_missing: change_set.approvals_missing,
        decisions,
        operations,
        rollback_of: change_set.rollback_of.map(|id| id.to_string()),
        rolled_back_by: change_set.rolled_back_by.map(|id| id.to_string()),
        applied_at: change_set.applied_at.map(format_minute),
        own_decision,
        can_decide,
        can_apply,
        can_rollback,
        notes,
        row: list_row(
            change_set.id,
            change_set.title,
            change_set.status,
            change_set.requested_by,
            change_set.risk_score,
            change_set.tier,
            change_set.operations.len() as i32,
            change_set.created_at,
            change_set.expires_at,
        ),
    }
}

/// Explains to `principal` what they can or must wait for, such as why an approver cannot
/// decide or how many approvals the requester still needs.
fn caller_notes(
    change_set: &ChangeSet,
    principal: &Principal,
    own_decision: Option<&str>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let status = change_set.status.as_str();
    let is_requester = principal.email == change_set.requested_by;
    let waiting = matches!(status, "pending" | "approved");

    if waiting && change_set.expires_at <= OffsetDateTime::now_utc() {
        notes.push(format!(
            "This request expired at {}, so it takes no more decisions and cannot be applied; \
             submit the change again.",
            format_minute(change_set.expires_at)
        ));
        return notes;
    }
    if status == "applying" {
        notes.push("The apply job is running. Reload the page to see the result.".to_string());
    }
    if principal.has(Role::Approver) && waiting {
        if is_requester {
            notes.push(
                "You requested this change set, so another approver must decide on it.".to_string(),
            );
        } else if let Some(decision) = own_decision {
            let done = if decision == "approve" {
                "approved"
            } else {
                "rejected"
            };
            notes.push(format!(
                "You {done} revision {}; a second decision on it would not count.",
                change_set.revision
            ));
        }
    }
    if is_requester && status == "pending" && change_set.tier != Tier::SelfApply {
        notes.push(format!(
            "It needs {} more approval(s) before you can apply it.",
            change_set.approvals_missing
        ));
    }
    if is_requester && status == "applied" && change_set.rollback_of.is_some() {
        notes.push(
            "This change set is itself a rollback, so it cannot be rolled back; apply a new \
             change set instead."
                .to_string(),
        );
    }
    notes
}

/// Converts the backend's rollback outcome for the page.
pub fn rollback_result(outcome: RollbackOutcome) -> RollbackResult {
    match outcome {
        RollbackOutcome::Created { change_set } => RollbackResult::Created {
            id: change_set.id.to_string(),
            title: change_set.title,
        },
        RollbackOutcome::Conflicts { conflicts } => {
            RollbackResult::Conflicts(conflicts.iter().map(conflict_row).collect())
        }
    }
}

/// Converts an audit entry to a display row.
pub fn audit_row(entry: AuditEntry) -> AuditRow {
    AuditRow {
        seq: entry.seq,
        at: format_second(entry.occurred_at),
        actor: entry.actor,
        action: entry.action,
        subject_type: entry.subject_type,
        subject_id: entry.subject_id,
        ip: entry.ip.unwrap_or_default(),
        correlation_id: entry.correlation_id.unwrap_or_default(),
    }
}

/// After a plain form post (no JavaScript), sends the browser to the detail page of `id` with
/// the rollback's outcome in the query, because such a page cannot read the server function's
/// return value. Calls made by the hydrated page are left alone.
pub fn redirect_plain_post_with_rollback(id: Uuid, result: &RollbackResult) {
    let Some(parts) = use_context::<http::request::Parts>() else {
        return;
    };
    let plain_post = parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if plain_post {
        leptos_axum::redirect(&rollback_target(id, result));
    }
}

/// Builds the detail page address that reports a rollback's outcome.
pub fn rollback_target(id: Uuid, result: &RollbackResult) -> String {
    match result {
        RollbackResult::Created {
            id: rollback_id, ..
        } => {
            format!("/changes/{id}?rollback={rollback_id}")
        }
        RollbackResult::Conflicts(conflicts) => {
            format!("/changes/{id}?conflicts={}", conflicts.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_name_invalid_values() {
        let errors = [
            parse_status(Some("done")).expect_err("unknown status"),
            parse_sort(Some("newest")).expect_err("unknown sort"),
            parse_decision("maybe").expect_err("unknown decision"),
            parse_site_code("wh 01").expect_err("invalid site code"),
            parse_id("id", "abc").expect_err("not a UUID"),
        ];
        let expected = [
            "status \"done\"",
            "sort \"newest\"",
            "decision \"maybe\"",
            "code \"wh 01\"",
            "id \"abc\"",
        ];
        for (error, expected) in errors.iter().zip(expected) {
            let message = error.to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
        assert_eq!(parse_status(Some("")).expect("empty is any"), None);
        assert!(parse_sort(Some("risk")).expect("risk is valid"));
        assert_eq!(parse_site_code(" WH-01 ").expect("valid"), "WH-01");
    }

    #[test]
    fn rollback_target_reports_the_outcome() {
        let id = Uuid::nil();
        let created = RollbackResult::Created {
            id: "abc".to_string(),
            title: "Roll back: x".to_string(),
        };
        assert_eq!(
            rollback_target(id, &created),
            format!("/changes/{id}?rollback=abc")
        );
        let conflicts = RollbackResult::Conflicts(vec![]);
        assert_eq!(
            rollback_target(id, &conflicts),
            format!("/changes/{id}?conflicts=0")
        );
    }
}
