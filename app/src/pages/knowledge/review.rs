//! The review queue for approvers and admins: documents waiting for reviewers, with their
//! findings shown first, the approvals so far and a link to each document.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::parts::{authority_badge, document_path, is_reviewer, FlagList, SectionLinks};
use crate::account::CurrentUser;
use crate::knowledge::{
    load_review_queue, QueueRow, APPROVALS_NEEDED, KNOWLEDGE_PATH, REVIEW_PATH,
};
use crate::pages::change_parts::load_error;

/// Lists the documents waiting for two reviewers.
#[component]
pub fn KnowledgeReviewPage() -> impl IntoView {
    let user = use_context::<CurrentUser>();
    let content = if is_reviewer(user.as_ref()) {
        view! { <Queue /> }.into_any()
    } else {
        view! {
            <div class="error-panel" role="alert" data-testid="review-refused">
                <h1>"Not available to your account"</h1>
                <p>"The review queue is for the approver and admin roles. Ask an admin of your tenant to grant one."</p>
                <p><A href=KNOWLEDGE_PATH>"Search and list documents"</A></p>
            </div>
        }
        .into_any()
    };
    view! {
        <Title text="Knowledge review · Siteline" />
        {content}
    }
}

#[component]
fn Queue() -> impl IntoView {
    let queue = Resource::new(|| (), |_| load_review_queue());

    view! {
        <h1>"Knowledge review"</h1>
        <p class="kb-lede">
            "Documents that passed the pipeline and wait for two reviewers, neither of them the submitter. Read the findings first: hidden text and instruction-like passages are why a document needs a careful read."
        </p>
        <SectionLinks />
        <Transition fallback=|| view! { <p class="page-status">"Loading the review queue…"</p> }>
            {move || Suspend::new(async move {
                match queue.await {
                    Ok(rows) if rows.is_empty() => empty_queue().into_any(),
                    Ok(rows) => view! { <QueueList rows /> }.into_any(),
                    Err(error) => load_error("The review queue could not be loaded", error, "queue-error"),
                }
            })}
        </Transition>
    }
}

fn empty_queue() -> impl IntoView {
    view! {
        <section class="empty-state" data-testid="queue-empty">
            <h2>"No document waits for review"</h2>
            <p>"Documents appear here when their pipeline finishes, until two reviewers approve or one rejects them."</p>
            <a class="button" href=REVIEW_PATH>"Check again"</a>
        </section>
    }
}

#[component]
fn QueueList(rows: Vec<QueueRow>) -> impl IntoView {
    let count = format!("{} waiting.", rows.len());
    view! {
        <p class="kb-muted">{count}</p>
        <ul class="kb-queue">
            {rows.into_iter().map(|row| view! { <QueueItem row /> }).collect_view()}
        </ul>
    }
}

#[component]
fn QueueItem(row: QueueRow) -> impl IntoView {
    let document = row.row;
    let href = document_path(&document.id);
    let approvals = if row.approved_by.is_empty() {
        format!("0 of {APPROVALS_NEEDED} approvals so far.")
    } else {
        format!(
            "{} of {APPROVALS_NEEDED} approvals so far, by {}.",
            row.approvals,
            row.approved_by.join(", ")
        )
    };
    let chunks = if row.chunk_count == 1 {
        "1 chunk".to_string()
    } else {
        format!("{} chunks", row.chunk_count)
    };
    let facts = format!(
        "{} · {chunks} · submitted by {} {}",
        document.source, row.submitted_by, document.age
    );

    view! {
        <li class="kb-queue-item" data-testid="queue-row" data-id=document.id.clone()>
            <div class="kb-result-head">
                <A href=href.clone() attr:class="kb-result-title" attr:data-testid="queue-link">{document.title}</A>
                {authority_badge(&document.authority)}
            </div>
            <p class="kb-muted kb-wrap">{facts}</p>
            <p data-testid="queue-approvals">{approvals}</p>
            <FlagList flags=row.flags />
            <p><A href=href attr:class="button secondary">"Open and review"</A></p>
        </li>
    }
}
