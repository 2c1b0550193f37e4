//! Change sets, site configuration and the audit trail, as server functions.
//!
//! The role rules are those of the REST API: any role reads sites and change sets, approvers
//! decide (never on their own change set), managers apply and roll back their own change sets,
//! and admins read the audit trail. Values cross to the browser as display-ready text formatted
//! on the server, so the browser build needs neither the backend's types nor a date library.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub(crate) mod ssr;

/// Maximum change sets on one list, the backend's page size for the REST list as well.
pub const LIST_LIMIT: i64 = 100;

/// Audit entries on the Audit page, newest first.
pub const AUDIT_LIMIT: i64 = 100;

/// Maximum length of a decision comment, in characters. The backend rejects longer comments.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// Change set statuses in the order of their life, for the status filter.
pub const STATUSES: [&str; 7] = [
    "pending",
    "approved",
    "rejected",
    "expired",
    "applying",
    "applied",
    "rolled_back",
];

/// Checks a site code against the rule the database enforces: 1-32 characters of A-Z, 0-9,
/// `_` and `-`, starting with a letter or digit.
pub fn is_site_code(code: &str) -> bool {
    let mut chars = code.chars();
    let valid_char = |ch: char| ch.is_ascii_uppercase() || ch.is_ascii_digit();
    chars.next().is_some_and(valid_char)
        && code.len() <= 32
        && chars.all(|ch| valid_char(ch) || ch == '_' || ch == '-')
}

/// A label and its value, such as `Timezone` and `Europe/Berlin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// The value's name, e.g. `Timezone`.
    pub label: String,
    /// The value as text.
    pub value: String,
}

/// Rows of one configuration kind as a table of text cells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowTable {
    /// Column headings.
    pub columns: Vec<String>,
    /// One cell per column in each row.
    pub rows: Vec<Vec<String>>,
}

/// A site's configuration as the Site page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteView {
    /// Site code, e.g. `WH-01`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Kind, timezone, address, user limit and security level.
    pub facts: Vec<Fact>,
    /// `Open 24/7`, or the hours of each weekday (`closed` when the site does not open).
    pub hours: Vec<Fact>,
    /// The security settings, or `None` when the site has none yet.
    pub security: Option<Vec<Fact>>,
    /// Zones, by code.
    pub zones: RowTable,
    /// Assets, by code.
    pub assets: RowTable,
    /// Guard tour checkpoints, by code.
    pub checkpoints: RowTable,
    /// Staffing shifts, by name.
    pub shifts: RowTable,
    /// Maintenance schedules, by code.
    pub maintenance_schedules: RowTable,
}

/// A change set as a row of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSetRow {
    /// Change set id.
    pub id: String,
    /// Short title.
    pub title: String,
    /// One of [`STATUSES`].
    pub status: String,
    /// Email of the requester.
    pub requested_by: String,
    /// Risk score with two decimals, e.g. `0.40`.
    pub risk: String,
    /// The approvals the tier needs, in words, e.g. `one approval`.
    pub tier: String,
    /// Number of operations.
    pub operations: i32,
    /// Creation time, `YYYY-MM-DD HH:MM UTC`.
    pub created_at: String,
    /// Time since creation, e.g. `5 min ago`.
    pub age: String,
    /// When decisions stop being accepted, `YYYY-MM-DD HH:MM UTC`.
    pub expires_at: String,
    /// Whether the expiry time has passed while the status still reads pending or approved.
    pub overdue: bool,
}

/// One field of an operation's diff. Empty `before` or `after` means the row did not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Column name, e.g. `max_users`.
    pub field: String,
    /// The value before the operation.
    pub before: String,
    /// The value after the operation.
    pub after: String,
}

/// One operation of a change set with its diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationView {
    /// Position in the change set, from 1.
    pub seq: usize,
    /// Kind of row, e.g. `security_settings`.
    pub kind: String,
    /// create, update or delete.
    pub action: String,
    /// The natural key, e.g. `site_code E2E-01, code GATE-1`.
    pub key: String,
    /// The operation in plain words, e.g. `Create zone GATE-1 at site E2E-01`.
    pub summary: String,
    /// The operation's own risk, two decimals.
    pub risk: String,
    /// For update the changed fields only, for create the new row, for delete the old row.
    pub fields: Vec<FieldChange>,
    /// Problems with the operation; empty when it is valid.
    pub errors: Vec<String>,
}

/// One approval or rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRow {
    /// Email of the approver.
    pub decided_by: String,
    /// approve or reject.
    pub decision: String,
    /// The approver's comment.
    pub comment: Option<String>,
    /// The revision decided on.
    pub revision: i32,
    /// When, `YYYY-MM-DD HH:MM UTC`.
    pub decided_at: String,
}

/// A change set with everything the detail page shows, and what the caller may do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSetDetail {
    /// The list fields.
    pub row: ChangeSetRow,
    /// Grows on every edit; approvals count for the current revision only.
    pub revision: i32,
    /// The reason the tier applies, e.g. `one approval needed: risk 0.40 is between 0.3 and 0.7`.
    pub explanation: String,
    /// Approvals of the current revision by people other than the requester.
    pub approvals: usize,
    /// Approvals the tier needs in all.
    pub approvals_needed: usize,
    /// Approvals still missing.
    pub approvals_missing: usize,
    /// Every decision, newest first.
    pub decisions: Vec<DecisionRow>,
    /// The operations in order, with their diffs.
    pub operations: Vec<OperationView>,
    /// Id of the change set this one rolls back.
    pub rollback_of: Option<String>,
    /// Id of the pending or applied change set that rolls this one back.
    pub rolled_back_by: Option<String>,
    /// When it was applied, `YYYY-MM-DD HH:MM UTC`.
    pub applied_at: Option<String>,
    /// The caller's own decision on the current revision, e.g. `approve`; a second one would
    /// not count.
    pub own_decision: Option<String>,
    /// Whether the caller may approve or reject now.
    pub can_decide: bool,
    /// Whether the caller may apply now.
    pub can_apply: bool,
    /// Whether the caller may request a rollback now.
    pub can_rollback: bool,
    /// Sentences on what the caller can or must wait for, e.g. why they cannot decide.
    pub notes: Vec<String>,
}

/// A row that changed since the change set applied it, which blocks the rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRow {
    /// Kind of row.
    pub kind: String,
    /// Its key, e.g. `code E2E-01`.
    pub key: String,
    /// The differing fields as the apply left them, one `field: value` line each.
    pub expected: Vec<String>,
    /// The same fields now.
    pub current: Vec<String>,
}

/// The outcome of a rollback request: a new change set, or the rows that block it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RollbackResult {
    /// The rollback change set was created and waits for its tier's approvals.
    Created {
        /// Its id.
        id: String,
        /// Its title, `Roll back: …`.
        title: String,
    },
    /// Rows changed since the apply, so nothing was created.
    Conflicts(Vec<ConflictRow>),
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Position in the tenant's hash chain.
    pub seq: i64,
    /// When, `YYYY-MM-DD HH:MM:SS UTC`.
    pub at: String,
    /// The actor's email, `system` or `operator (command line)`.
    pub actor: String,
    /// Dotted action name, e.g. `change_set.approve`.
    pub action: String,
    /// Kind of the subject, e.g. `change_set`.
    pub subject_type: String,
    /// The subject's id.
    pub subject_id: String,
    /// Client address, or empty.
    pub ip: String,
    /// Correlation id of the request, or empty.
    pub correlation_id: String,
}

/// The result of recomputing the tenant's audit hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerification {
    /// Rows checked.
    pub rows: i64,
    /// Whether every row matches its content and its predecessor.
    pub intact: bool,
    /// The first row that does not match.
    pub first_broken_seq: Option<i64>,
    /// The reason that row does not match.
    pub reason: Option<String>,
}

/// Reads the configuration of site `code`; `None` when the tenant has no such site. Any role.
#[server(prefix = "/sfn", endpoint = "site")]
pub async fn load_site(code: String) -> Result<Option<SiteView>, ServerFnError> {
    use backend::facility;
    use backend::http::AnyRole;

    let call = ssr::Call::<AnyRole>::authorize().await?;
    let code = ssr::parse_site_code(&code).map_err(|error| call.fail(error))?;
    let configuration = facility::site_configuration(&call.state.pool, call.tenant(), &code)
        .await
        .map_err(|error| call.fail(error.into()))?;
    Ok(configuration.map(ssr::site_view))
}

/// Lists the tenant's change sets, newest first, optionally in one status and only the
/// caller's own. Any role.
#[server(prefix = "/sfn", endpoint = "change-sets")]
pub async fn list_change_sets(
    #[server(default)] status: Option<String>,
    #[server(default)] mine: bool,
) -> Result<Vec<ChangeSetRow>, ServerFnError> {
    use backend::changes::store;
    use backend::http::AnyRole;

    let call = ssr::Call::<AnyRole>::authorize().await?;
    let status = ssr::parse_status(status.as_deref()).map_err(|error| call.fail(error))?;
    let requester = mine.then(|| call.caller.principal().user_id.0);
    let summaries = store::list(
        &call.state.pool,
        call.tenant(),
        status.as_deref(),
        requester,
        LIST_LIMIT,
    )
    .await
    .map_err(|error| call.fail(error))?;
    Ok(summaries.into_iter().map(ssr::row).collect())
}

/// Lists the pending change sets that the caller did not request, oldest first, or riskiest
/// first when `sort` is `risk`. Approvers only.
#[server(prefix = "/sfn", endpoint = "approvals-inbox")]
pub async fn load_approvals_inbox(
    #[server(default)] sort: Option<String>,
) -> Result<Vec<ChangeSetRow>, ServerFnError> {
    use backend::changes::store;
    use backend::http::ApproverRole;

    let call = ssr::Call::<ApproverRole>::authorize().await?;
    let by_risk = ssr::parse_sort(sort.as_deref()).map_err(|error| call.fail(error))?;
    let summaries = store::list(
        &call.state.pool,
        call.tenant(),
        Some("pending"),
        None,
        LIST_LIMIT,
    )
    .await
    .map_err(|error| call.fail(error))?;
    let caller_email = call.caller.principal().email.clone();
    Ok(ssr::inbox(summaries, &caller_email, by_risk))
}

/// Reads one change set with its diff, decisions and the actions open to the caller. Any role.
#[server(prefix = "/sfn", endpoint = "change-set")]
pub async fn load_change_set(id: String) -> Result<ChangeSetDetail, ServerFnError> {
    use backend::changes::store;
    use backend::http::AnyRole;

    let call = ssr::Call::<AnyRole>::authorize().await?;
    let uuid = ssr::parse_id("id", &id).map_err(|error| call.fail(error))?;
    let change_set = store::get(&call.state.pool, call.tenant(), uuid)
        .await
        .map_err(|error| call.fail(error))?;
    Ok(ssr::detail(change_set, call.caller.principal()))
}

/// Approves or rejects change set `id` with an optional comment. Approvers only, and never the
/// requester. The form's two submit buttons send `decision` as `approve` or `reject`.
#[server(prefix = "/sfn", endpoint = "decide-change-set")]
pub async fn decide_change_set(
    id: String,
    decision: String,
    #[server(default)] comment: String,
) -> Result<(), ServerFnError> {
    use backend::changes::store;
    use backend::http::ApproverRole;

    let call = ssr::Call::<ApproverRole>::authorize().await?;
    let uuid = ssr::parse_id("id", &id).map_err(|error| call.fail(error))?;
    let decision = ssr::parse_decision(&decision).map_err(|error| call.fail(error))?;
    let comment = Some(comment.trim()).filter(|text| !text.is_empty());
    let caller = call.audit_caller().await?;
    let change_set = store::decide(&call.state.pool, &caller, uuid, decision, comment)
        .await
        .map_err(|error| call.fail(error))?;
    tracing::info!(
        change_set_id = %uuid,
        decision = ?decision,
        status = %change_set.status,
        "change set decided from the detail page"
    );
    Ok(())
}

/// Queues the apply of change set `id` and returns the job id. Its requester only, once it is
/// approved or when its tier needs no approval.
#[server(prefix = "/sfn", endpoint = "apply-change-set")]
pub async fn apply_change_set(id: String) -> Result<String, ServerFnError> {
    use backend::changes::store;
    use backend::http::ManagerRole;

    let call = ssr::Call::<ManagerRole>::authorize().await?;
    let uuid = ssr::parse_id("id", &id).map_err(|error| call.fail(error))?;
    let caller = call.audit_caller().await?;
    let job_id = store::request_apply(&call.state.pool, &caller, uuid)
        .await
        .map_err(|error| call.fail(error))?;
    tracing::info!(change_set_id = %uuid, job_id = %job_id, "change set apply queued from the detail page");
    Ok(job_id.to_string())
}

/// Creates the rollback change set of applied change set `id`, or returns the rows changed
/// since the apply, which block it. Its requester only.
///
/// A plain form post (no JavaScript) cannot read the return value, so it is redirected back to
/// the detail page with the outcome in the query: `rollback=<new id>` or `conflicts=<count>`.
#[server(prefix = "/sfn", endpoint = "rollback-change-set")]
pub async fn rollback_change_set(id: String) -> Result<RollbackResult, ServerFnError> {
    use backend::changes::store;
    use backend::http::ManagerRole;

    let call = ssr::Call::<ManagerRole>::authorize().await?;
    let uuid = ssr::parse_id("id", &id).map_err(|error| call.fail(error))?;
    let caller = call.audit_caller().await?;
    let outcome = store::rollback(&call.state.pool, &caller, uuid)
        .await
        .map_err(|error| call.fail(error))?;
    let result = ssr::rollback_result(outcome);
    match &result {
        RollbackResult::Created {
            id: rollback_id, ..
        } => tracing::info!(
            change_set_id = %uuid,
            rollback_change_set_id = %rollback_id,
            "rollback change set created from the detail page"
        ),
        RollbackResult::Conflicts(conflicts) => tracing::info!(
            change_set_id = %uuid,
            conflicts = conflicts.len(),
            "rollback blocked by rows changed since the apply"
        ),
    }
    ssr::redirect_plain_post_with_rollback(uuid, &result);
    Ok(result)
}

/// Lists the newest [`AUDIT_LIMIT`] entries of the tenant's audit trail. Admins only.
#[server(prefix = "/sfn", endpoint = "audit")]
pub async fn list_audit() -> Result<Vec<AuditRow>, ServerFnError> {
    use backend::audit;
    use backend::http::AdminRole;

    let call = ssr::Call::<AdminRole>::authorize().await?;
    let entries = audit::list(&call.state.pool, call.tenant(), None, None, AUDIT_LIMIT)
        .await
        .map_err(|error| call.fail(error.into()))?;
    Ok(entries.into_iter().map(ssr::audit_row).collect())
}

/// Recomputes the tenant's audit hash chain and names the first broken row. Admins only.
#[server(prefix = "/sfn", endpoint = "audit-verify")]
pub async fn verify_audit() -> Result<AuditVerification, ServerFnError> {
    use backend::audit;
    use backend::http::AdminRole;

    let call = ssr::Call::<AdminRole>::authorize().await?;
    let verification = audit::verify(&call.state.pool, call.tenant())
        .await
        .map_err(|error| call.fail(error.into()))?;
    if !verification.intact {
        tracing::warn!(
            first_broken_seq = verification.first_broken_seq,
            reason = verification.reason.as_deref().unwrap_or(""),
            "audit chain verification found a broken row"
        );
    }
    Ok(AuditVerification {
        rows: verification.rows,
        intact: verification.intact,
        first_broken_seq: verification.first_broken_seq,
        reason: verification.reason,
    })
}
