//! One change set for any role: its facts, the tier explained, decisions, a diff per
//! operation, and the actions open to the caller (approve or reject, apply, rollback).
//!
//! The actions are `ActionForm`s, so they work before hydration and without JavaScript. A plain
//! rollback post returns here with its outcome in the query (`rollback` or `conflicts`).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use leptos_router::params::ParamsMap;

use super::change_parts::{capitalize, error_text, status_badge};
use crate::account::CurrentUser;
use crate::changes::{
    load_change_set, ApplyChangeSet, ChangeSetDetail, ConflictRow, DecideChangeSet, DecisionRow,
    OperationView, RollbackChangeSet, RollbackResult, MAX_COMMENT_CHARS,
};

/// Shows a change set and the actions open to the signed-in user.
#[component]
pub fn ChangeSetPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = Memo::new(move |_| params.with(|params| params.get("id").unwrap_or_default()));
    let decide = ServerAction::<DecideChangeSet>::new();
    let apply = ServerAction::<ApplyChangeSet>::new();
    let rollback = ServerAction::<RollbackChangeSet>::new();
    // Only successful actions reload, so a rejected one keeps the typed comment on screen.
    let succeeded = move || {
        (
            matches!(decide.value().get(), Some(Ok(()))),
            matches!(apply.value().get(), Some(Ok(_))),
            matches!(rollback.value().get(), Some(Ok(_))),
        )
    };
    let detail = Resource::new(
        move || (id.get(), succeeded()),
        |(id, _)| load_change_set(id),
    );
    // A link to another change set keeps this page mounted, so the outcomes of the last
    // actions, which belong to the previous change set, are cleared.
    Effect::watch(
        move || id.get(),
        move |_, _, _| {
            decide.clear();
            apply.clear();
            rollback.clear();
        },
        false,
    );

    view! {
        <Title text="Change set · Siteline" />
        <BackLinks />
        <Transition fallback=|| view! { <p class="page-status">"Loading the change set…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(detail) => view! { <DetailBody detail decide apply rollback query /> }.into_any(),
                    Err(error) => view! {
                        <div class="error-panel" role="alert" data-testid="change-set-error">
                            <h1>"The change set could not be loaded"</h1>
                            <p>{error_text(error)}</p>
                            <p>"Check the address, or open the change set from a list."</p>
                        </div>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

/// Links back to the lists the user's roles open.
#[component]
fn BackLinks() -> impl IntoView {
    let user = use_context::<CurrentUser>();
    let has = |role: &str| user.as_ref().is_some_and(|user| user.has(role));
    view! {
        <p class="cs-back">
            {has("approver").then(|| view! { <A href="/approvals">"← Approvals inbox"</A> })}
            {has("manager").then(|| view! { <A href="/changes">"← My changes"</A> })}
        </p>
    }
}

#[component]
fn DetailBody(
    detail: ChangeSetDetail,
    decide: ServerAction<DecideChangeSet>,
    apply: ServerAction<ApplyChangeSet>,
    rollback: ServerAction<RollbackChangeSet>,
    query: Memo<ParamsMap>,
) -> impl IntoView {
    let row = detail.row.clone();
    let tier_sentence = format!("{}.", capitalize(&detail.explanation));
    let approvals = format!(
        "{} of {} approval(s) so far; {} missing.",
        detail.approvals, detail.approvals_needed, detail.approvals_missing
    );
    let notes = detail
        .notes
        .iter()
        .map(|note| view! { <p class="cs-note" data-testid="caller-note">{note.clone()}</p> })
        .collect_view();
    let operations = detail
        .operations
        .into_iter()
        .map(|operation| view! { <OperationDiff operation /> })
        .collect_view();

    view! {
        <h1 data-testid="change-set-title">{row.title.clone()}</h1>
        <section class="cs-facts" aria-label="Facts">
            <dl>
                <div>
                    <dt>"Status"</dt>
                    <dd data-testid="change-set-status">{status_badge(row.status.clone(), row.overdue)}</dd>
                </div>
                <div><dt>"Requested by"</dt><dd data-testid="change-set-requester">{row.requested_by.clone()}</dd></div>
                <div><dt>"Created"</dt><dd>{format!("{} ({})", row.created_at, row.age)}</dd></div>
                <div><dt>"Expires"</dt><dd>{row.expires_at.clone()}</dd></div>
                {detail.applied_at.clone().map(|at| view! { <div><dt>"Applied"</dt><dd>{at}</dd></div> })}
                <div><dt>"Risk score"</dt><dd data-testid="change-set-risk">{row.risk.clone()}</dd></div>
                <div><dt>"Operations"</dt><dd>{row.operations}</dd></div>
                <div><dt>"Revision"</dt><dd>{detail.revision}</dd></div>
                {detail.rollback_of.clone().map(|original| view! {
                    <div>
                        <dt>"Rolls back"</dt>
                        <dd><A href=format!("/changes/{original}") attr:class="mono">{original.clone()}</A></dd>
                    </div>
                })}
                {detail.rolled_back_by.clone().map(|rollback| view! {
                    <div>
                        <dt>"Rolled back by"</dt>
                        <dd>
                            <A href=format!("/changes/{rollback}") attr:class="mono">
                                <span data-testid="rolled-back-by">{rollback.clone()}</span>
                            </A>
                        </dd>
                    </div>
                })}
            </dl>
        </section>
        <section class="cs-tier" aria-label="Tier">
            <p><strong>"Tier: "</strong><span data-testid="tier-explanation">{tier_sentence}</span></p>
            <p data-testid="approvals">{approvals}</p>
            {notes}
        </section>
        <ActionReports decide apply rollback query />
        <Actions
            id=row.id.clone()
            can_decide=detail.can_decide
            can_apply=detail.can_apply
            can_rollback=detail.can_rollback
            decide
            apply
            rollback
            query
        />
        <section class="cs-section">
            <h2>"Decisions"</h2>
            <DecisionList decisions=detail.decisions />
        </section>
        <section class="cs-section" data-testid="operations">
            <h2>"Operations"</h2>
            {operations}
        </section>
    }
}

/// Shows the outcome of the last action: from the action after a hydrated submit, or from the
/// query that the server adds after a plain rollback post.
#[component]
fn ActionReports(
    decide: ServerAction<DecideChangeSet>,
    apply: ServerAction<ApplyChangeSet>,
    rollback: ServerAction<RollbackChangeSet>,
    query: Memo<ParamsMap>,
) -> impl IntoView {
    let decided = move || {
        matches!(decide.value().get(), Some(Ok(()))).then(|| {
            view! { <p class="cs-notice" data-testid="decision-report">"Your decision is recorded."</p> }
        })
    };
    let applied = move || {
        apply.value().get().and_then(Result::ok).map(|job_id| {
            view! {
                <p class="cs-notice" data-testid="apply-report">
                    {format!("Apply queued as job {job_id}. The status turns applied when the job finishes; reload to see it.")}
                </p>
            }
        })
    };
    let from_action = move || rollback.value().get().and_then(Result::ok);
    let from_url = move || {
        query.with(|query| {
            if let Some(id) = query.get("rollback") {
                return Some(RollbackReport::Created(id));
            }
            let count = query.get("conflicts")?.parse::<usize>().ok()?;
            Some(RollbackReport::ConflictCount(count))
        })
    };
    let rolled_back = move || match from_action() {
        Some(RollbackResult::Created { id, .. }) => Some(RollbackReport::Created(id)),
        Some(RollbackResult::Conflicts(conflicts)) => Some(RollbackReport::Conflicts(conflicts)),
        None => from_url(),
    };

    view! {
        <div class="cs-message-region" aria-live="polite">
            {decided}
            {applied}
            {move || rolled_back().map(rollback_report)}
        </div>
    }
}

/// A rollback's outcome as the page can know it. A plain post reports only the count of
/// conflicts, because the rows do not fit in the redirect's query.
enum RollbackReport {
    Created(String),
    Conflicts(Vec<ConflictRow>),
    ConflictCount(usize),
}

fn rollback_report(report: RollbackReport) -> AnyView {
    match report {
        RollbackReport::Created(id) => view! {
            <p class="cs-notice" data-testid="rollback-report">
                "Rollback change set created. It waits for its own approvals: "
                <A href=format!("/changes/{id}") attr:data-testid="rollback-link">"open the rollback change set"</A>
                "."
            </p>
        }
        .into_any(),
        RollbackReport::Conflicts(conflicts) => view! { <ConflictTable conflicts /> }.into_any(),
        // TODO: list the conflicting rows after a plain post too. The redirect carries only
        // their count, and the backend has no read-only rollback check that lists them.
        RollbackReport::ConflictCount(count) => view! {
            <div class="error-panel" role="alert" data-testid="rollback-conflicts">
                <h2>"Nothing was rolled back"</h2>
                <p>
                    {format!("{count} row(s) changed since this change set was applied. ")}
                    "Turn on JavaScript and press Request rollback again to see them, then change those rows with a new change set."
                </p>
            </div>
        }
        .into_any(),
    }
}

#[component]
fn ConflictTable(conflicts: Vec<ConflictRow>) -> impl IntoView {
    let heading = format!(
        "Nothing was rolled back: {} row(s) changed since this change set was applied",
        conflicts.len()
    );
    let lines = |lines: Vec<String>| {
        lines
            .into_iter()
            .map(|line| view! { <span class="cs-line">{line}</span> })
            .collect_view()
    };
    view! {
        <div class="error-panel" role="alert" data-testid="rollback-conflicts">
            <h2>{heading}</h2>
            <p>"Review each row, then change it with a new change set; a rollback never overwrites later changes."</p>
            <div class="table-scroll" role="region" aria-label="Rollback conflicts" tabindex="0">
                <table class="table cs-table">
                    <thead>
                        <tr>
                            <th scope="col">"Kind"</th>
                            <th scope="col">"Key"</th>
                            <th scope="col">"Expected (as applied)"</th>
                            <th scope="col">"Current"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {conflicts
                            .into_iter()
                            .map(|conflict| view! {
                                <tr data-testid="conflict-row">
                                    <td>{conflict.kind}</td>
                                    <td class="cs-wrap">{conflict.key}</td>
                                    <td class="cs-wrap">{lines(conflict.expected)}</td>
                                    <td class="cs-wrap">{lines(conflict.current)}</td>
                                </tr>
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        </div>
    }
}

/// Renders the forms the caller may use now; none for a reader.
#[component]
fn Actions(
    id: String,
    can_decide: bool,
    can_apply: bool,
    can_rollback: bool,
    decide: ServerAction<DecideChangeSet>,
    apply: ServerAction<ApplyChangeSet>,
    rollback: ServerAction<RollbackChangeSet>,
    query: Memo<ParamsMap>,
) -> impl IntoView {
    if !(can_decide || can_apply || can_rollback) {
        return ().into_any();
    }
    // The original keeps its applied status until the rollback is applied. Later visits hide
    // the form through `can_rollback` (the detail names its rollback); on this visit it hides
    // as soon as this page has created the rollback.
    let rollback_created = move || {
        matches!(
            rollback.value().get(),
            Some(Ok(RollbackResult::Created { .. }))
        ) || query.with(|query| query.get("rollback").is_some())
    };
    let rollback_id = id.clone();
    view! {
        <section class="cs-section cs-actions" aria-label="Actions">
            {can_decide.then(|| view! { <DecisionForm id=id.clone() decide /> })}
            {can_apply.then(|| view! { <ApplyForm id=id.clone() apply /> })}
            {move || {
                (can_rollback && !rollback_created())
                    .then(|| view! { <RollbackForm id=rollback_id.clone() rollback /> })
            }}
        </section>
    }
    .into_any()
}

/// Approve and reject share one form: the pressed button sends `decision`.
#[component]
fn DecisionForm(id: String, decide: ServerAction<DecideChangeSet>) -> impl IntoView {
    let pending = decide.pending();
    let error = move || decide.value().get().and_then(Result::err).map(error_text);

    view! {
        <ActionForm action=decide attr:class="cs-form cs-decide">
            <h2>"Your decision"</h2>
            <input type="hidden" name="id" value=id />
            <label for="decision-comment">"Comment (optional)"</label>
            <textarea
                id="decision-comment"
                name="comment"
                rows="3"
                maxlength=MAX_COMMENT_CHARS.to_string()
                aria-describedby="decision-comment-help decision-error"
                data-testid="decision-comment"
            ></textarea>
            <p id="decision-comment-help" class="cs-muted">
                {format!("Up to {MAX_COMMENT_CHARS} characters; kept with the decision and in the audit trail.")}
            </p>
            <div id="decision-error" aria-live="polite">
                {move || error().map(|text| view! { <p class="field-error" data-testid="decision-error">{text}</p> })}
            </div>
            <div class="cs-buttons">
                <button
                    type="submit"
                    name="decision"
                    value="approve"
                    class="button"
                    data-testid="approve-button"
                    disabled=move || pending.get()
                >
                    "Approve"
                </button>
                <button
                    type="submit"
                    name="decision"
                    value="reject"
                    class="button danger"
                    data-testid="reject-button"
                    disabled=move || pending.get()
                >
                    "Reject"
                </button>
            </div>
        </ActionForm>
    }
}

#[component]
fn ApplyForm(id: String, apply: ServerAction<ApplyChangeSet>) -> impl IntoView {
    let pending = apply.pending();
    let error = move || apply.value().get().and_then(Result::err).map(error_text);

    view! {
        <ActionForm action=apply attr:class="cs-form cs-apply">
            <h2>"Apply"</h2>
            <input type="hidden" name="id" value=id />
            <p class="cs-muted">"Applies every operation in one transaction, in order, as a background job."</p>
            <div aria-live="polite">
                {move || error().map(|text| view! { <p class="field-error" data-testid="apply-error">{text}</p> })}
            </div>
            <button type="submit" class="button" data-testid="apply-button" disabled=move || pending.get()>
                {move || if pending.get() { "Queueing…" } else { "Apply" }}
            </button>
        </ActionForm>
    }
}

#[component]
fn RollbackForm(id: String, rollback: ServerAction<RollbackChangeSet>) -> impl IntoView {
    let pending = rollback.pending();
    let error = move || rollback.value().get().and_then(Result::err).map(error_text);

    view! {
        <ActionForm action=rollback attr:class="cs-form cs-rollback">
            <h2>"Rollback"</h2>
            <input type="hidden" name="id" value=id />
            <p class="cs-muted">
                "Creates a new change set that undoes this one. It needs its own approvals, and it is refused when rows changed since the apply."
            </p>
            <div aria-live="polite">
                {move || error().map(|text| view! { <p class="field-error" data-testid="rollback-error">{text}</p> })}
            </div>
            <button type="submit" class="button secondary" data-testid="rollback-button" disabled=move || pending.get()>
                {move || if pending.get() { "Requesting…" } else { "Request rollback" }}
            </button>
        </ActionForm>
    }
}

#[component]
fn DecisionList(decisions: Vec<DecisionRow>) -> impl IntoView {
    if decisions.is_empty() {
        return view! { <p class="cs-muted" data-testid="decisions-empty">"No decisions yet."</p> }
            .into_any();
    }
    view! {
        <ul class="cs-decisions" data-testid="decisions">
            {decisions
                .into_iter()
                .map(|decision| {
                    let verb = if decision.decision == "approve" { "approved" } else { "rejected" };
                    let class = format!("badge badge-cs-{verb}");
                    view! {
                        <li>
                            <span class=class>{verb}</span>
                            " by "{decision.decided_by}
                            {format!(" on revision {} at {}", decision.revision, decision.decided_at)}
                            {decision.comment.map(|comment| view! { <p class="cs-comment">{comment}</p> })}
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
    .into_any()
}

/// Renders one operation: what it does in plain words, then any errors and its diff table.
#[component]
fn OperationDiff(operation: OperationView) -> impl IntoView {
    let heading = format!("{}. {}", operation.seq, operation.summary);
    let facts = format!(
        "kind {} · action {} · key {} · risk {}",
        operation.kind, operation.action, operation.key, operation.risk
    );
    let errors = (!operation.errors.is_empty()).then(|| {
        let items = operation
            .errors
            .iter()
            .map(|error| view! { <li>{error.clone()}</li> })
            .collect_view();
        view! { <ul class="field-error cs-op-errors" data-testid="operation-errors">{items}</ul> }
    });

    view! {
        <article class="cs-op" data-testid="operation">
            <h3 data-testid="operation-summary">{heading}</h3>
            <p class="cs-muted cs-wrap">{facts}</p>
            {errors}
            <FieldTable action=operation.action fields=operation.fields />
        </article>
    }
}

/// Renders the diff: field, before and after for an update, the new row for a create, and the
/// old row for a delete.
#[component]
fn FieldTable(action: String, fields: Vec<crate::changes::FieldChange>) -> impl IntoView {
    if fields.is_empty() {
        return view! { <p class="cs-muted">"No field changes."</p> }.into_any();
    }
    let update = action == "update";
    let value_heading = if action == "delete" {
        "Old value"
    } else {
        "New value"
    };
    let rows = fields
        .into_iter()
        .map(|change| {
            let cells = if update {
                view! { <td class="cs-before">{change.before}</td><td class="cs-after">{change.after}</td> }
                    .into_any()
            } else if action == "delete" {
                view! { <td class="cs-before">{change.before}</td> }.into_any()
            } else {
                view! { <td class="cs-after">{change.after}</td> }.into_any()
            };
            view! { <tr><th scope="row">{change.field}</th>{cells}</tr> }
        })
        .collect_view();

    view! {
        <div class="table-scroll" role="region" aria-label="Field changes" tabindex="0">
            <table class="table cs-diff" data-testid="diff-table">
                <thead>
                    <tr>
                        <th scope="col">"Field"</th>
                        {if update {
                            view! { <th scope="col">"Before"</th><th scope="col">"After"</th> }.into_any()
                        } else {
                            view! { <th scope="col">{value_heading}</th> }.into_any()
                        }}
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}
