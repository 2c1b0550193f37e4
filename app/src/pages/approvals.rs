//! The Approvals inbox for approvers: pending change sets that other people requested.
//!
//! The order travels in the URL through a GET form, so the page works without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Form, A};
use leptos_router::hooks::use_query_map;

use super::change_parts::load_error;
use super::require_role;
use crate::changes::{load_approvals_inbox, ChangeSetRow};

/// Path of the inbox.
const INBOX_PATH: &str = "/approvals";

/// Lists the change sets waiting for the approver's decision.
#[component]
pub fn ApprovalsPage() -> impl IntoView {
    view! {
        <Title text="Approvals · Siteline" />
        {require_role("approver", view! { <Inbox /> })}
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
