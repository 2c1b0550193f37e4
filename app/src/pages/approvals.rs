//! The Approvals inbox for approvers: pending change sets that other people requested.
//!
//! The order travels in the URL through a GET form, so the page works without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Form, A};
use leptos_router::hooks::use_query_map;

use super::change_parts::{error_text, load_error};
use super::require_role;
use crate::changes::{load_approvals_inbox, ChangeSetRow};
use crate::chat::{load_notifications, MarkNotificationRead, NotificationRow};

/// Path of the inbox.
const INBOX_PATH: &str = "/approvals";

/// Lists the change sets waiting for the approver's decision.
#[component]
pub fn ApprovalsPage() -> impl IntoView {
    view! {
        <Title text="Approvals · Siteline" />
        {require_role("approver", view! { <Escalations /><Inbox /> })}
    }
}

#[component]
fn Inbox() -> impl IntoView {
    let query = use_query_map();
    let sort = Memo::new(move |_| query.with(|query| query.get("sort")));
    let inbox = Resource::new(move || sort.get(), load_approvals_inbox);
    let by_risk = move || sort.get().as_deref() == Some("risk");

    view! {
        <h1>"Approvals inbox"</h1>
        <p class="cs-lede">
            "Pending change sets that other people requested. Open one to read its diff, then approve or reject it."
        </p>
        <Form method="get" action=INBOX_PATH attr:class="cs-filter">
            <label for="inbox-sort">"Order"</label>
            <select id="inbox-sort" name="sort">
                <option value="oldest" selected=move || !by_risk()>"Oldest first (nearest expiry)"</option>
                <option value="risk" selected=by_risk>"Highest risk first"</option>
            </select>
            <button type="submit" class="button secondary" data-testid="apply-sort">"Sort"</button>
        </Form>
        <Transition fallback=|| view! { <p class="page-status">"Loading the inbox…"</p> }>
            {move || Suspend::new(async move {
                match inbox.await {
                    Ok(rows) if rows.is_empty() => empty_inbox().into_any(),
                    Ok(rows) => view! { <InboxTable rows /> }.into_any(),
                    Err(error) => load_error("The inbox could not be loaded", error, "inbox-error"),
                }
            })}
        </Transition>
    }
}

/// Renders the approver's unread notifications, such as escalated conversations, above the
/// inbox; nothing when there are none.
#[component]
fn Escalations() -> impl IntoView {
    let mark = ServerAction::<MarkNotificationRead>::new();
    let list = Resource::new(move || mark.version().get(), |_| load_notifications());
    let error = move || mark.value().get().and_then(Result::err).map(error_text);
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(rows) if rows.is_empty() => ().into_any(),
                    Ok(rows) => view! { <EscalationList rows mark /> }.into_any(),
                    Err(error) => load_error("Your notifications could not be loaded", error, "notifications-error"),
                }
            })}
        </Transition>
        <p class="field-error" role="alert" aria-live="assertive">{error}</p>
    }
}

#[component]
fn EscalationList(
    rows: Vec<NotificationRow>,
    mark: ServerAction<MarkNotificationRead>,
) -> impl IntoView {
    let items = rows
        .into_iter()
        .map(|row| {
            view! {
                <li class="notification" data-testid="notification">
                    <p>{row.message}</p>
                    <p class="kb-muted">{row.created_at}</p>
                    <A href=row.href attr:data-testid="notification-link">"Open the conversation"</A>
                    <ActionForm action=mark attr:class="chat-inline-form">
                        <input type="hidden" name="id" value=row.id />
                        <button type="submit" class="button secondary" data-testid="notification-read">"Mark as read"</button>
                    </ActionForm>
                </li>
            }
        })
        .collect_view();
    view! {
        <section class="notifications" aria-labelledby="notifications-heading" data-testid="notifications">
            <h2 id="notifications-heading">"Needs your attention"</h2>
            <ul class="notification-list">{items}</ul>
        </section>
    }
}

fn empty_inbox() -> impl IntoView {
    view! {
        <section class="empty-state" data-testid="inbox-empty">
            <h2>"Nothing waits for your decision"</h2>
            <p>"Change sets that managers submit appear here until they are approved, rejected or expire."</p>
            <a class="button" href=INBOX_PATH>"Check again"</a>
        </section>
    }
}

#[component]
fn InboxTable(rows: Vec<ChangeSetRow>) -> impl IntoView {
    let count = format!("{} waiting.", rows.len());
    view! {
        <p class="cs-muted">{count}</p>
        <div class="table-scroll" role="region" aria-label="Pending change sets" tabindex="0">
            <table class="table cs-table">
                <thead>
                    <tr>
                        <th scope="col">"Title"</th>
                        <th scope="col">"Requested by"</th>
                        <th scope="col" class="num">"Risk"</th>
                        <th scope="col">"Tier"</th>
                        <th scope="col" class="num">"Operations"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Expires"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|row| view! { <InboxRow row /> }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn InboxRow(row: ChangeSetRow) -> impl IntoView {
    let href = format!("/changes/{}", row.id);
    view! {
        <tr data-testid="inbox-row" data-id=row.id.clone()>
            <td class="cs-title-cell">
                <A href=href attr:data-testid="change-set-link">{row.title}</A>
                {row.overdue.then(|| view! { " " <span class="badge badge-cs-expired">"past expiry"</span> })}
            </td>
            <td class="cs-wrap">{row.requested_by}</td>
            <td class="num">{row.risk}</td>
            <td>{row.tier}</td>
            <td class="num">{row.operations}</td>
            <td class="cs-nowrap">{row.created_at}<br /><span class="cs-muted">{row.age}</span></td>
            <td class="cs-nowrap">{row.expires_at}</td>
        </tr>
    }
}
