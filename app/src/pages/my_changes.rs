//! My changes for managers: the change sets they requested, with status and links to apply or
//! roll them back on their own pages.
//!
//! The status filter travels in the URL through a GET form, so the page works without
//! JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Form, A};
use leptos_router::hooks::use_query_map;

use super::change_parts::{load_error, status_badge};
use super::require_role;
use crate::changes::{list_change_sets, ChangeSetRow, STATUSES};

/// Path of the list.
const LIST_PATH: &str = "/changes";

/// Lists the manager's own change sets, newest first.
#[component]
pub fn MyChangesPage() -> impl IntoView {
    view! {
        <Title text="My changes · Siteline" />
        {require_role("manager", view! { <MyChanges /> })}
    }
}

#[component]
fn MyChanges() -> impl IntoView {
    let query = use_query_map();
    let status = Memo::new(move |_| {
        query.with(|query| query.get("status").filter(|status| !status.is_empty()))
    });
    let list = Resource::new(
        move || status.get(),
        |status| list_change_sets(status, true),
    );
    let status_options = STATUSES
        .iter()
        .map(|&choice| {
            let selected = move || status.get().as_deref() == Some(choice);
            view! { <option value=choice selected=selected>{choice.replace('_', " ")}</option> }
        })
        .collect_view();

    view! {
        <h1>"My changes"</h1>
        <p class="cs-lede">
            "Change sets you requested, newest first. Open one to apply it once approved, or to roll it back after it is applied."
        </p>
        <Form method="get" action=LIST_PATH attr:class="cs-filter">
            <label for="changes-status">"Status"</label>
            <select id="changes-status" name="status">
                <option value="">"any"</option>
                {status_options}
            </select>
            <button type="submit" class="button secondary" data-testid="apply-status">"Show"</button>
        </Form>
        <Transition fallback=|| view! { <p class="page-status">"Loading your change sets…"</p> }>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(rows) if rows.is_empty() => empty_list(status.get_untracked()).into_any(),
                    Ok(rows) => view! { <ChangesTable rows /> }.into_any(),
                    Err(error) => load_error("Your change sets could not be listed", error, "changes-error"),
                }
            })}
        </Transition>
    }
}

/// Renders the empty state, whose next step depends on whether the status filter hid every row.
fn empty_list(status: Option<String>) -> impl IntoView {
    match status {
        Some(status) => view! {
            <section class="empty-state" data-testid="changes-empty">
                <h2>{format!("None of your change sets is {}", status.replace('_', " "))}</h2>
                <p>"Pick another status, or show them all."</p>
                <a class="button" href=LIST_PATH>"Show all"</a>
            </section>
        }
        .into_any(),
        None => view! {
            <section class="empty-state" data-testid="changes-empty">
                <h2>"You have not requested any change yet"</h2>
                <p>"Describe the change in Chat and submit the proposal; it appears here with its status."</p>
                <a class="button" href="/chat">"Open Chat"</a>
            </section>
        }
        .into_any(),
    }
}

// TODO: show approvals so far per row once the backend's list returns them; today only the
// detail page has them.
#[component]
fn ChangesTable(rows: Vec<ChangeSetRow>) -> impl IntoView {
    view! {
        <div class="table-scroll" role="region" aria-label="My change sets" tabindex="0">
            <table class="table cs-table">
                <thead>
                    <tr>
                        <th scope="col">"Title"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Tier"</th>
                        <th scope="col" class="num">"Risk"</th>
                        <th scope="col" class="num">"Operations"</th>
                        <th scope="col">"Created"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|row| {
                            let href = format!("/changes/{}", row.id);
                            view! {
                                <tr data-testid="change-row" data-id=row.id.clone()>
                                    <td class="cs-title-cell">
                                        <A href=href attr:data-testid="change-set-link">{row.title}</A>
                                    </td>
                                    <td>{status_badge(row.status, row.overdue)}</td>
                                    <td>{row.tier}</td>
                                    <td class="num">{row.risk}</td>
                                    <td class="num">{row.operations}</td>
                                    <td class="cs-nowrap">{row.created_at}<br /><span class="cs-muted">{row.age}</span></td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
