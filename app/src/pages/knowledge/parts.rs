//! Pieces shared by the knowledge pages: badges, the progress bar, the findings list and the
//! section links.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::account::CurrentUser;
pub use crate::knowledge::document_path;
use crate::knowledge::{FlagRow, KNOWLEDGE_PATH, REVIEW_PATH};

/// Checks whether the signed-in user may review documents: approvers and admins.
pub fn is_reviewer(user: Option<&CurrentUser>) -> bool {
    user.is_some_and(|user| user.has("approver") || user.has("admin"))
}

/// Renders a document status as a badge, e.g. `in review`.
pub fn status_badge(status: &str) -> impl IntoView {
    let class = format!("badge kb-status kb-status-{status}");
    let label = status.replace('_', " ");
    view! { <span class=class data-testid="document-status">{label}</span> }
}

/// Renders a source authority as a badge, e.g. `official`.
pub fn authority_badge(authority: &str) -> impl IntoView {
    let class = format!("badge kb-authority kb-authority-{authority}");
    view! { <span class=class data-testid="authority-badge">{authority.to_string()}</span> }
}

/// Draws the pipeline progress as a native `<progress>` element, since the page's CSP forbids
/// the inline style a width would need, with the stage and percentage beside it in words.
#[component]
pub fn ProgressBar(progress: i16, text: String, failed: bool) -> impl IntoView {
    let label = format!("{text} · {progress} %");
    view! {
        <div class="kb-progress" class:kb-progress-failed=failed data-testid="progress">
            <progress max="100" value=progress aria-label="Pipeline progress">
                {format!("{progress} %")}
            </progress>
            <span class="kb-progress-text" data-testid="progress-text">{label}</span>
        </div>
    }
}

/// Lists findings for reviewers. Injection-like instructions and hidden text get a warning
/// style, because they are why a reviewer reads a document with care.
#[component]
pub fn FlagList(flags: Vec<FlagRow>) -> impl IntoView {
    if flags.is_empty() {
        return view! { <p class="kb-muted" data-testid="no-flags">"No findings: nothing hidden or instruction-like was found."</p> }
            .into_any();
    }
    let warnings = flags.iter().filter(|flag| flag.level != "info").count();
    let summary = match warnings {
        0 => None,
        1 => Some("1 finding needs a careful read.".to_string()),
        count => Some(format!("{count} findings need a careful read.")),
    };
    let items = flags
        .into_iter()
        .map(|flag| {
            let class = format!("kb-flag kb-flag-{}", flag.level);
            let section = (!flag.section.is_empty()).then(
                || view! { <span class="kb-flag-section">{format!("in {}", flag.section)}</span> },
            );
            view! {
                <li class=class data-testid="flag" data-level=flag.level.clone()>
                    <strong>{flag.label}</strong>
                    {section}
                    <span class="kb-flag-detail">{flag.detail}</span>
                </li>
            }
        })
        .collect_view();

    view! {
        <div class="kb-flags" data-testid="flags">
            {summary.map(|text| view! { <p class="kb-flag-summary" role="note">{text}</p> })}
            <ul>{items}</ul>
        </div>
    }
    .into_any()
}

/// Links between the Knowledge page and the review queue, for people who review.
#[component]
pub fn SectionLinks() -> impl IntoView {
    let user = use_context::<CurrentUser>();
    if !is_reviewer(user.as_ref()) {
        return ().into_any();
    }
    view! {
        <nav class="kb-tabs" aria-label="Knowledge sections">
            <A href=KNOWLEDGE_PATH exact=true>"Documents and search"</A>
            <A href=REVIEW_PATH attr:data-testid="review-queue-link">"Review queue"</A>
        </nav>
    }
    .into_any()
}
