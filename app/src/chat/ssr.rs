//! Server-side glue of the chat server functions: input parsing and conversion of the
//! backend's conversations, messages and runs into display text.

use backend::conversations::facts::{CollectedData, OperatingHours};
use backend::conversations::messages::{self, Message, FLAG_INJECTION};
use backend::conversations::{self, Conversation, ConversationState, ConversationType};
use backend::http::{AnyRole, ApiError};
use backend::ids::ConversationId;
use backend::notifications::Notification;
use backend::recommendations::runs::{self, ItemView, RunView};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    ChatMessage, ChatSummary, ChatView, CitationChip, FindingLine, NotificationRow, ProposalCard,
    RunCard,
};
use crate::account::ssr::invalid_value as invalid;
pub use crate::account::ssr::Call;
use crate::changes::ssr::format_minute;
use crate::changes::ssr::rows::summary as operation_summary;

/// Parses a conversation id, naming the value when it is not a UUID.
pub fn parse_conversation_id(raw: &str) -> Result<ConversationId, ApiError> {
    ConversationId::parse("conversation", raw).map_err(|_| {
        invalid(
            "conversation",
            raw,
            "a conversation id is a UUID; open conversations from the Chat page's list",
        )
    })
}

/// Parses the conversation type chosen on the start form.
pub fn parse_kind(raw: &str) -> Result<ConversationType, ApiError> {
    match raw.trim() {
        "new_site" | "" => Ok(ConversationType::NewSite),
        "update_site" => Ok(ConversationType::UpdateSite),
        other => Err(invalid(
            "conversation_type",
            other,
            "choose new_site (set up a new site) or update_site (change an existing one)",
        )),
    }
}

/// Parses a submission: the run id and the accepted item ids.
pub fn parse_submission(run_id: &str, accepted: &[String]) -> Result<(Uuid, Vec<Uuid>), ApiError> {
    let run = backend::ids::parse_uuid("run", run_id)?;
    if accepted.is_empty() {
        return Err(invalid(
            "accepted",
            "",
            "accept at least one proposed change before submitting, or decline the proposal by \
             starting over",
        ));
    }
    let items = accepted
        .iter()
        .map(|id| backend::ids::parse_uuid("accepted", id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((run, items))
}

/// Parses an escalation reason: trimmed, a default sentence when empty, at most
/// [`super::MAX_REASON_CHARS`] characters.
pub fn parse_reason(raw: &str) -> Result<String, ApiError> {
    let reason = raw.trim();
    if reason.chars().count() > super::MAX_REASON_CHARS {
        return Err(invalid(
            "reason",
            raw,
            &format!(
                "shorten the reason to at most {} characters",
                super::MAX_REASON_CHARS
            ),
        ));
    }
    if reason.is_empty() {
        return Ok("the manager asked for help".to_string());
    }
    Ok(reason.to_string())
}

/// Loads the whole view of a conversation.
pub async fn load(call: &Call<AnyRole>, raw_id: &str) -> Result<ChatView, ApiError> {
    let id = parse_conversation_id(raw_id)?;
    let pool = &call.state.pool;
    let scope = call.caller.scope();
    let conversation = conversations::get(pool, scope, id).await?;
    let messages = messages::list(pool, scope, id, None, messages::MAX_PAGE).await?;
    let run = runs::latest(pool, scope, id).await?;
    Ok(view(conversation, messages, run))
}

/// Builds the view from its parts.
fn view(conversation: Conversation, messages: Vec<Message>, run: Option<RunView>) -> ChatView {
    let state = ConversationState::parse(&conversation.state);
    let active = state.is_some_and(ConversationState::is_active);
    let awaiting_reply = messages
        .last()
        .is_some_and(|message| message.role == "user");
    let run_card = run.map(run_card);
    let generating = state == Some(ConversationState::GeneratingRecommendations);
    let (state_label, progress) = match (&run_card, generating) {
        (Some(run), true) => (run.stage_label.clone(), Some(run.progress)),
        _ => (
            state_words(&conversation.state, awaiting_reply).to_string(),
            None,
        ),
    };
    let can_send = matches!(
        state,
        Some(ConversationState::Started | ConversationState::InProgress)
    );
    let facts = serde_json::from_value::<CollectedData>(conversation.collected_data.clone())
        .map(|data| fact_lines(&data))
        .unwrap_or_default();
    ChatView {
        id: conversation.id.to_string(),
        site_code: conversation.site_code,
        kind: kind_words(&conversation.conversation_type).to_string(),
        state: conversation.state,
        state_label,
        progress,
        active,
        can_send,
        can_recommend: state == Some(ConversationState::InProgress),
        facts,
        messages: messages.into_iter().map(message).collect(),
        run: run_card,
    }
}

/// Converts a conversation to a row of the start panel.
pub fn summary(conversation: Conversation) -> ChatSummary {
    let active =
        ConversationState::parse(&conversation.state).is_some_and(ConversationState::is_active);
    ChatSummary {
        id: conversation.id.to_string(),
        site_code: conversation.site_code,
        kind: kind_words(&conversation.conversation_type).to_string(),
        state_label: state_words(&conversation.state, false).to_string(),
        active,
        created_at: format_minute(conversation.created_at),
    }
}

/// Names a conversation type.
fn kind_words(kind: &str) -> &'static str {
    match kind {
        "update_site" => "Existing site",
        _ => "New site",
    }
}

/// Converts a notification to a row with a link to its subject.
pub fn notification_row(notification: Notification) -> NotificationRow {
    let href = match notification.subject_type.as_str() {
        "conversation" => format!("{}?c={}", super::CHAT_PATH, notification.subject_id),
        _ => "/".to_string(),
    };
    NotificationRow {
        id: notification.id.to_string(),
        message: notification.message,
        href,
        created_at: format_minute(notification.created_at),
    }
}

/// Says what a conversation in `state` is doing.
fn state_words(state: &str, awaiting_reply: bool) -> &'static str {
    match state {
        "started" if awaiting_reply => "Reading your message",
        "started" => "Waiting for your first message",
        "in_progress" if awaiting_reply => "Reading your message",
        "in_progress" => "Collecting the facts of the site",
        "generating_recommendations" => "Preparing the proposal",
        "awaiting_user_approval" => "Proposal ready: accept or decline each change",
        "completed" => "Completed",
        "cancelled" => "Cancelled",
        "error" => "Stopped: an approver has been asked to help",
        _ => "Unknown state",
    }
}

/// Says what a run's stage does.
fn stage_words(stage: &str, status: &str) -> &'static str {
    match (status, stage) {
        ("failed", _) => "The proposal could not be prepared",
        ("succeeded", _) | (_, "done") => "Proposal ready",
        (_, "retrieve") => "Searching the knowledge base",
        (_, "maker") => "Maker drafting",
        (_, "checker") => "Checker reviewing",
        (_, "consensus") => "Scoring",
        (_, "persist") => "Saving the proposal",
        _ => "Working",
    }
}

/// Converts a message; screening flags become words.
fn message(message: Message) -> ChatMessage {
    let flags = message
        .flags
        .iter()
        .map(|flag| match flag.as_str() {
            FLAG_INJECTION => "Possible prompt injection: treated as data only".to_string(),
            other => other.replace('_', " "),
        })
        .collect();
    ChatMessage {
        id: message.id.to_string(),
        role: message.role,
        text: message.text,
        flags,
        time: format_time(message.created_at),
    }
}

/// Converts a run and its items.
fn run_card(run: RunView) -> RunCard {
    let mut notes = Vec::new();
    if let Some(count) = run.removed_unknown.filter(|count| *count > 0) {
        notes.push(format!(
            "{count} citation(s) named a passage that was not retrieved and were removed."
        ));
    }
    if let Some(count) = run.removed_unsupported.filter(|count| *count > 0) {
        notes.push(format!(
            "{count} citation(s) the checker found unsupported were removed."
        ));
    }
    let dropped = run.dropped.as_array().map_or(0, Vec::len);
    if dropped > 0 {
        notes.push(format!(
            "The checker rejected {dropped} proposed change(s); they are not listed."
        ));
    }
    notes.extend(
        run.escalation_reasons
            .iter()
            .map(|reason| format!("Escalated: {reason}.")),
    );
    let sources = [
        ("Proposed by", &run.maker_source),
        ("Checked by", &run.checker_source),
    ]
    .into_iter()
    .filter_map(|(verb, source)| source.as_ref().map(|source| format!("{verb} {source}.")))
    .collect();
    RunCard {
        id: run.id.to_string(),
        sources,
        stage_label: stage_words(&run.stage, &run.status).to_string(),
        progress: run.progress.clamp(0, 100) as u8,
        decision: run.decision.as_deref().map(decision_words),
        confidence: run.confidence.map(percent),
        notes,
        error: run.error,
        status: run.status,
        items: run.items.into_iter().map(proposal_card).collect(),
    }
}

/// Says what a consensus decision means for the manager.
fn decision_words(decision: &str) -> String {
    match decision {
        "approve" => "The checker and the scoring agree: ready to submit".to_string(),
        "review" => "Review each change carefully before submitting".to_string(),
        "escalate" => "Escalated to an approver".to_string(),
        "reject" => "Rejected by the scoring".to_string(),
        other => other.to_string(),
    }
}

/// Converts a proposal item.
fn proposal_card(item: ItemView) -> ProposalCard {
    let operation = &item.operation;
    let mut summary = operation_summary(operation.kind, operation.action, &operation.key);
    if let Some(name) = operation.fields.get("name").and_then(Value::as_str) {
        summary = format!("{summary}: {name}");
    }
    let fields = operation
        .fields
        .iter()
        .filter(|(name, _)| name.as_str() != "name")
        .map(|(name, value)| (name.replace('_', " "), value_text(value)))
        .collect();
    let findings = serde_json::from_value::<Vec<FindingValue>>(item.findings.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|finding| FindingLine {
            category: match finding.category.as_str() {
                "business_rule" => "Business rule".to_string(),
                "security" => "Security".to_string(),
                "compliance" => "Compliance".to_string(),
                other => other.to_string(),
            },
            passed: finding.passed,
            message: finding.message,
        })
        .collect();
    ProposalCard {
        id: item.id.to_string(),
        summary,
        action: operation.action.as_str().to_string(),
        fields,
        rationale: item.rationale,
        confidence: percent(item.confidence),
        citations: item
            .citations
            .into_iter()
            .map(|citation| CitationChip {
                chunk_id: citation.chunk_id.to_string(),
                title: citation.document_title,
                section: citation.section_path.join(" › "),
                quote: citation.quote,
            })
            .collect(),
        findings,
    }
}

/// A stored checker finding, read leniently for display.
#[derive(serde::Deserialize)]
struct FindingValue {
    category: String,
    passed: bool,
    message: String,
}

/// Lists the collected facts as label and value lines.
fn fact_lines(data: &CollectedData) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    let mut push = |label: &str, value: Option<String>| {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            lines.push((label.to_string(), value));
        }
    };
    push("Site name", data.site_name.clone());
    push("City", data.city.clone());
    push(
        "Kind",
        data.site_kind
            .as_ref()
            .and_then(|kind| serde_json::to_value(kind).ok())
            .map(|value| value_text(&value)),
    );
    push("People", data.people_count.map(|count| count.to_string()));
    push("Hours", data.hours.as_ref().map(hours_text));
    push(
        "Security level",
        data.security_level
            .as_ref()
            .and_then(|level| serde_json::to_value(level).ok())
            .map(|value| value_text(&value)),
    );
    push(
        "Zones",
        Some(
            data.zones
                .iter()
                .map(|zone| zone.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    );
    push(
        "Assets",
        Some(
            data.assets
                .iter()
                .map(|asset| asset.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    );
    lines
}

/// Formats operating hours, e.g. `Open 24/7` or `mon 09:30-16:30; sat closed`.
fn hours_text(hours: &OperatingHours) -> String {
    match hours {
        OperatingHours::Always => "Open 24/7".to_string(),
        OperatingHours::Weekly { days } => days
            .iter()
            .map(|(day, ranges)| {
                let day = serde_json::to_value(day)
                    .map(|value| value_text(&value))
                    .unwrap_or_default();
                if ranges.is_empty() {
                    format!("{day} closed")
                } else {
                    let ranges: Vec<String> = ranges
                        .iter()
                        .map(|range| format!("{}-{}", range.start, range.end))
                        .collect();
                    format!("{day} {}", ranges.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Formats a JSON value as short text: strings bare, lists joined, objects as `key value`.
fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "none".to_string(),
        Value::Bool(true) => "yes".to_string(),
        Value::Bool(false) => "no".to_string(),
        Value::String(text) => text.replace('_', " "),
        Value::Number(number) => number.to_string(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| format!("{key} {}", value_text(value)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Converts a fraction in [0, 1] to a whole percentage.
fn percent(fraction: f64) -> u8 {
    (fraction.clamp(0.0, 1.0) * 100.0).round() as u8
}

/// Formats a time of day as `HH:MM UTC`.
fn format_time(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[hour]:[minute] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn value_text_reads_plainly() {
        assert_eq!(value_text(&json!("loading_dock")), "loading dock");
        assert_eq!(value_text(&json!(["mon", "tue"])), "mon, tue");
        assert_eq!(value_text(&json!(true)), "yes");
        assert_eq!(value_text(&json!({"count": 2})), "count 2");
    }

    #[test]
    fn stage_words_follow_the_chain() {
        assert_eq!(stage_words("maker", "running"), "Maker drafting");
        assert_eq!(stage_words("checker", "running"), "Checker reviewing");
        assert_eq!(
            stage_words("maker", "failed"),
            "The proposal could not be prepared"
        );
        assert_eq!(stage_words("done", "succeeded"), "Proposal ready");
    }

    #[test]
    fn submission_needs_an_accepted_item() {
        let run = Uuid::now_v7().to_string();
        assert!(parse_submission(&run, &[]).is_err());
        let item = Uuid::now_v7();
        let (_, items) = parse_submission(&run, &[item.to_string()]).unwrap();
        assert_eq!(items, vec![item]);
        assert!(parse_submission(&run, &["nope".to_string()]).is_err());
    }
}
