//! Conversations with the assistant, as server functions: start or resume one per site, post
//! messages, ask for a recommendation, and submit the accepted items as a change set.
//!
//! The browser learns about new messages and state moves from the REST event stream
//! (`/api/v1/conversations/{id}/events`) and then reloads the view through [`load_chat`], so
//! the page shows one consistent snapshot. Values cross to the browser as display text.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
mod ssr;

/// Path of the Chat page.
pub const CHAT_PATH: &str = "/chat";

/// Maximum length of a message, in characters; the backend rejects longer ones.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// Maximum length of an escalation reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Conversations listed on the Chat page's start panel.
pub const LIST_LIMIT: i64 = 20;

/// One of the caller's conversations, as a row of the start panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSummary {
    /// Conversation id.
    pub id: String,
    /// The site it is about, e.g. `WH-01`.
    pub site_code: String,
    /// `New site` or `Existing site`.
    pub kind: String,
    /// The state in words, e.g. `Proposal ready`.
    pub state_label: String,
    /// Whether the conversation is still open.
    pub active: bool,
    /// Creation time, `YYYY-MM-DD HH:MM UTC`.
    pub created_at: String,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Message id.
    pub id: String,
    /// `user` or `assistant`.
    pub role: String,
    /// The text, shown as text, never as markup.
    pub text: String,
    /// Screening flags in words, e.g. `Possible prompt injection`; empty when none.
    pub flags: Vec<String>,
    /// Time of day it was written, `HH:MM UTC`.
    pub time: String,
}

/// A conversation as the Chat page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatView {
    /// Conversation id.
    pub id: String,
    /// The site it is about.
    pub site_code: String,
    /// `New site` or `Existing site`.
    pub kind: String,
    /// The state name, e.g. `in_progress`.
    pub state: String,
    /// The current activity in words, e.g. `Maker drafting`.
    pub state_label: String,
    /// Progress of the current work in percent, when there is work to show.
    pub progress: Option<u8>,
    /// Whether the conversation is still open.
    pub active: bool,
    /// Whether messages may be sent now.
    pub can_send: bool,
    /// Whether a recommendation may be asked for now.
    pub can_recommend: bool,
    /// The facts collected so far, e.g. `Security level: high`.
    pub facts: Vec<(String, String)>,
    /// The messages, oldest first.
    pub messages: Vec<ChatMessage>,
    /// The newest recommendation run, if any.
    pub run: Option<RunCard>,
}

/// A recommendation run and its proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCard {
    /// Run id.
    pub id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// The stage in words, e.g. `Checker reviewing`.
    pub stage_label: String,
    /// Progress in percent.
    pub progress: u8,
    /// The consensus decision in words, when scored.
    pub decision: Option<String>,
    /// Overall confidence in percent, when scored.
    pub confidence: Option<u8>,
    /// Notes on what the consensus removed or escalated.
    pub notes: Vec<String>,
    /// The failure, for a failed run.
    pub error: Option<String>,
    /// Sentences naming the maker's and the checker's source, such as `Proposed by the offline
    /// rules, because ...`.
    pub sources: Vec<String>,
    /// The proposal items in order.
    pub items: Vec<ProposalCard>,
}

/// One proposed operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalCard {
    /// Item id, which the submission names.
    pub id: String,
    /// The operation in plain words, e.g. `Create zone DOCK at site WH-01: Loading dock`.
    pub summary: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    /// The values the operation sets, e.g. `importance: 4`.
    pub fields: Vec<(String, String)>,
    /// The maker's reason for the operation.
    pub rationale: String,
    /// Confidence after the checker's adjustment, in percent.
    pub confidence: u8,
    /// The chunks it cites.
    pub citations: Vec<CitationChip>,
    /// The checker's findings.
    pub findings: Vec<FindingLine>,
}

/// One citation: the source document and the quoted passage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitationChip {
    /// The chunk id.
    pub chunk_id: String,
    /// The document's title.
    pub title: String,
    /// Headings above the chunk, joined with ` › `; empty when none.
    pub section: String,
    /// The quoted chunk text.
    pub quote: String,
}

/// One rule the checker applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingLine {
    /// `Business rule`, `Security` or `Compliance`.
    pub category: String,
    /// Whether the operation passed.
    pub passed: bool,
    /// The rule and, on failure, the change to make.
    pub message: String,
}

/// Lists the caller's conversations, open ones first. Managers only.
#[server(prefix = "/sfn", endpoint = "chats")]
pub async fn list_my_chats() -> Result<Vec<ChatSummary>, ServerFnError> {
    use backend::http::ManagerRole;

    let call = ssr::Call::<ManagerRole>::authorize().await?;
    let conversations =
        backend::conversations::list_own(&call.state.pool, call.caller.principal(), LIST_LIMIT)
            .await
            .map_err(|error| call.fail(error))?;
    Ok(conversations.into_iter().map(ssr::summary).collect())
}

/// Starts a conversation about a site, or resumes the caller's open one for that site, and
/// returns its id. `conversation_type` is `new_site` or `update_site`. Managers only.
#[server(prefix = "/sfn", endpoint = "chat-start")]
pub async fn start_chat(
    site_code: String,
    conversation_type: String,
) -> Result<String, ServerFnError> {
    use backend::http::{ApiError, ManagerRole};

    let call = ssr::Call::<ManagerRole>::authorize().await?;
    let kind = ssr::parse_kind(&conversation_type).map_err(|error| call.fail(error))?;
    let started = backend::conversations::start_with(
        &call.state.pool,
        call.caller.principal(),
        &site_code,
        kind,
        &call.state.settings.conversations,
    )
    .await;
    match started {
        Ok(conversation) => Ok(conversation.id.to_string()),
        Err(ApiError::Conflict {
            existing_id: Some(existing),
            ..
        }) => Ok(existing),
        Err(error) => Err(call.fail(error)),
    }
}

/// Loads a conversation with its messages and newest run. Any role of the tenant.
#[server(prefix = "/sfn", endpoint = "chat")]
pub async fn load_chat(id: String) -> Result<ChatView, ServerFnError> {
    use backend::http::AnyRole;

    let call = ssr::Call::<AnyRole>::authorize().await?;
    ssr::load(&call, &id)
        .await
        .map_err(|error| call.fail(error))
}

/// Posts a message; the assistant's reply arrives through the event stream. Managers only.
#[server(prefix = "/sfn", endpoint = "chat-message")]
pub async fn send_chat_message(id: String, text: String) -> Result<(), ServerFnError> {
    use backend::http::ManagerRole;

    let call = ssr::Call::<ManagerRole>::authorize().await?;
    let id = ssr::parse_conversation_id(&id).map_err(|error| call.fail(error))?;
    backend::conversations::messages::post(
        &call.state.pool,
        call.caller.principal(),
        id,
        &text,
        &call.correlation.0,
    )
    .await
    .map_err(|error| call.fail(error))?;
    Ok(())
}

/// Asks for a recommendation now and returns the run id. Managers only.
#[server(prefix = "/sfn", endpoint = "chat-recommend")]
pub async fn recommend_now(id: String) -> Result<String, ServerFnError> {
    use backend::http::ManagerRole;

    let call = ssr::Call::<ManagerRole>::authorize().await?;
    let id = ssr::parse_conversation_id(&id).map_err(|error| call.fail(error))?;
    let run_id = backend::recommendations::runs::request(
        &call.state.pool,
        call.caller.principal(),
        id,
        &call.correlation.0,
    )
    .await
    .map_err(|error| call.fail(error))?;
    Ok(run_id.to_string())
}

/// Submits the accepted items of a run as a change set and returns its id. Managers only.
#[server(prefix = "/sfn", endpoint = "chat-submit")]
pub async fn submit_proposal(
    run_id: String,
    #[server(default)] accepted: Vec<String>,
) -> Result<String, ServerFnError> {
    use backend::http::ManagerRole;

    let call = ssr::Call::<ManagerRole>::authorize().await?;
    let caller = call.audit_caller().await?;
    let (run_id, accepted) =
        ssr::parse_submission(&run_id, &accepted).map_err(|error| call.fail(error))?;
    let change_set = backend::recommendations::runs::create_change_set(
        &call.state.pool,
        &caller,
        run_id,
        &accepted,
        None,
    )
    .await
    .map_err(|error| call.fail(error))?;
    Ok(change_set.id.to_string())
}

/// Cancels an open conversation of the caller. Managers only.
#[server(prefix = "/sfn", endpoint = "chat-cancel")]
pub async fn cancel_chat(id: String) -> Result<(), ServerFnError> {
    use backend::http::ManagerRole;

    let call = ssr::Call::<ManagerRole>::authorize().await?;
    let id = ssr::parse_conversation_id(&id).map_err(|error| call.fail(error))?;
    backend::conversations::lifecycle::cancel(
        &call.state.pool,
        call.caller.principal(),
        id,
        None,
        &call.correlation.0,
    )
    .await
    .map_err(|error| call.fail(error))?;
    Ok(())
}

/// Escalates an open conversation of the caller to the tenant's approvers, with an optional
/// reason; it moves to error. Managers only.
#[server(prefix = "/sfn", endpoint = "chat-escalate")]
pub async fn escalate_chat(
    id: String,
    #[server(default)] reason: String,
) -> Result<(), ServerFnError> {
    use backend::http::ManagerRole;

    let call = ssr::Call::<ManagerRole>::authorize().await?;
    let id = ssr::parse_conversation_id(&id).map_err(|error| call.fail(error))?;
    let reason = ssr::parse_reason(&reason).map_err(|error| call.fail(error))?;
    backend::conversations::lifecycle::escalate(
        &call.state.pool,
        call.caller.principal(),
        id,
        &reason,
        &call.correlation.0,
    )
    .await
    .map_err(|error| call.fail(error))?;
    Ok(())
}

/// One unread notification of the caller, such as an escalated conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRow {
    /// Notification id.
    pub id: String,
    /// The sentence to show.
    pub message: String,
    /// Link to the subject, e.g. `/chat?c=<id>`.
    pub href: String,
    /// Creation time, `YYYY-MM-DD HH:MM UTC`.
    pub created_at: String,
}

/// Lists the caller's unread notifications, newest first. Any role.
#[server(prefix = "/sfn", endpoint = "notifications")]
pub async fn load_notifications() -> Result<Vec<NotificationRow>, ServerFnError> {
    use backend::http::AnyRole;

    let call = ssr::Call::<AnyRole>::authorize().await?;
    let list = backend::notifications::unread(
        &call.state.pool,
        call.caller.principal(),
        backend::notifications::MAX_LIST,
    )
    .await
    .map_err(|error| call.fail(error))?;
    Ok(list.into_iter().map(ssr::notification_row).collect())
}

/// Marks one of the caller's notifications read. Any role.
#[server(prefix = "/sfn", endpoint = "notification-read")]
pub async fn mark_notification_read(id: String) -> Result<(), ServerFnError> {
    use backend::http::AnyRole;

    let call = ssr::Call::<AnyRole>::authorize().await?;
    let id = backend::ids::parse_uuid("notification", &id).map_err(|error| call.fail(error))?;
    backend::notifications::mark_read(&call.state.pool, call.caller.principal(), id)
        .await
        .map_err(|error| call.fail(error))
}
