//! One knowledge document: its facts, the pipeline stages with a progress bar, the error of a
//! failed stage, findings, reviews, the review and retire forms, and the chunks.
//!
//! While the stage jobs run, the page refreshes itself every 2 s: a hydrated page re-fetches
//! its resource on an interval, and a page without JavaScript reloads through a
//! `<meta http-equiv="refresh">` inside `<noscript>`, which only such a browser reads.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use super::parts::{authority_badge, status_badge, FlagList, ProgressBar, SectionLinks};
use crate::knowledge::{
    load_knowledge_document, stage_label, ChunkRow, DocumentDetail, RetireKnowledgeDocument,
    ReviewKnowledgeDocument, ReviewRow, StageStep, APPROVALS_NEEDED, KNOWLEDGE_PATH,
    MAX_COMMENT_CHARS,
};
use crate::pages::change_parts::{capitalize, error_text};

/// How often a document in the pipeline is read again.
const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// The reload for browsers without JavaScript. It sits in `<noscript>`, whose content a
/// browser with scripting on never parses, so it cannot reload a hydrated page.
const NOSCRIPT_REFRESH: &str = r#"<meta http-equiv="refresh" content="2">"#;

/// Shows a document and the actions open to the signed-in user.
#[component]
pub fn KnowledgeDocumentPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|params| params.get("id").unwrap_or_default()));
    let review = ServerAction::<ReviewKnowledgeDocument>::new();
    let retire = ServerAction::<RetireKnowledgeDocument>::new();
    let tick = RwSignal::new(0_u64);
    // Only successful actions reload, so a rejected review keeps the typed scores on screen.
    let succeeded = move || {
        (
            matches!(review.value().get(), Some(Ok(_))),
            matches!(retire.value().get(), Some(Ok(()))),
        )
    };
    let detail = Resource::new(
        move || (id.get(), tick.get(), succeeded()),
        |(id, _, _)| load_knowledge_document(id),
    );
    refresh_while_processing(detail, tick);

    view! {
        <Title text="Knowledge document · Siteline" />
        <p class="cs-back"><A href=KNOWLEDGE_PATH exact=true>"← Knowledge"</A></p>
        <SectionLinks />
        <Transition fallback=|| view! { <p class="page-status">"Loading the document…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(detail) => view! { <DetailBody detail review retire /> }.into_any(),
                    Err(error) => view! {
                        <div class="error-panel" role="alert" data-testid="document-error-panel">
                            <h1>"The document could not be loaded"</h1>
                            <p>{error_text(error)}</p>
                            <p>"Check the address, or open the document from the Knowledge page."</p>
                        </div>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

/// Bumps `tick` every [`REFRESH_INTERVAL`] while the loaded document is in the pipeline, which
/// re-fetches `detail`. Effects run only in the browser, so the server never starts the timer.
fn refresh_while_processing(
    detail: Resource<Result<DocumentDetail, ServerFnError>>,
    tick: RwSignal<u64>,
) {
    Effect::new(move |_| {
        let refresh = move || {
            let processing = detail.with_untracked(
                |loaded| matches!(loaded, Some(Ok(detail)) if detail.is_processing()),
            );
            if processing {
                tick.update(|count| *count += 1);
            }
        };
        match set_interval_with_handle(refresh, REFRESH_INTERVAL) {
            Ok(handle) => on_cleanup(move || handle.clear()),
            Err(error) => leptos::logging::error!("the progress refresh did not start: {error:?}"),
        }
    });
}

#[component]
fn DetailBody(
    detail: DocumentDetail,
    review: ServerAction<ReviewKnowledgeDocument>,
    retire: ServerAction<RetireKnowledgeDocument>,
) -> impl IntoView {
    let row = detail.row.clone();
    let processing = detail.is_processing();
    let failed = row.status == "failed";
    let notes = detail
        .notes
        .iter()
        .map(|note| view! { <p class="cs-note" data-testid="caller-note">{note.clone()}</p> })
        .collect_view();
    let facts = detail
        .facts
        .iter()
        .map(|(label, value)| {
            // A hash reads better in a fixed-width font.
            let class = if label == "SHA-256" {
                "kb-wrap mono"
            } else {
                "kb-wrap"
            };
            view! { <div><dt>{label.clone()}</dt><dd class=class>{value.clone()}</dd></div> }
        })
        .collect_view();

    view! {
        {processing.then(|| view! { <noscript inner_html=NOSCRIPT_REFRESH></noscript> })}
        <h1 data-testid="document-title">{row.title.clone()}</h1>
        <section class="cs-facts" aria-label="Facts">
            <dl>
                <div><dt>"Status"</dt><dd>{status_badge(&row.status)}</dd></div>
                <div><dt>"Authority"</dt><dd>{authority_badge(&row.authority)}</dd></div>
                <div>
                    <dt>{source_label(&row.source_kind)}</dt>
                    <dd class="kb-wrap" data-testid="document-source">{row.source.clone()}</dd>
                </div>
                <div><dt>"Submitted by"</dt><dd class="kb-wrap">{detail.submitted_by.clone()}</dd></div>
                <div><dt>"Submitted"</dt><dd>{format!("{} ({})", row.created_at, row.age)}</dd></div>
                {facts}
            </dl>
        </section>
        <PipelineSection detail=detail.clone() />
        {failed.then(|| view! { <FailedPanel detail=detail.clone() /> })}
        // Findings come before the review form, because they are what a reviewer reads first.
        <section class="kb-section" aria-labelledby="kb-flags-heading">
            <h2 id="kb-flags-heading">"Findings"</h2>
            <FlagList flags=detail.flags.clone() />
        </section>
        {notes}
        <ActionReports review retire />
        {detail.can_review.then(|| view! {
            <ReviewForm id=row.id.clone() scores_required=detail.scores_required review />
        })}
        {detail.can_retire.then(|| view! { <RetireForm id=row.id.clone() retire /> })}
        <section class="kb-section" aria-labelledby="kb-reviews-heading">
            <h2 id="kb-reviews-heading">"Reviews"</h2>
            <p data-testid="approvals">
                {format!("{} of {APPROVALS_NEEDED} approvals so far.", detail.approvals)}
            </p>
            <ReviewList reviews=detail.reviews.clone() />
        </section>
        <ChunkSection chunk_count=detail.chunk_count chunks=detail.chunks.clone() />
    }
}

/// Names the source's field by its kind.
fn source_label(kind: &str) -> &'static str {
    match kind {
        "upload" => "File",
        "webhook" => "URL (webhook)",
        _ => "URL",
    }
}

/// Renders the progress bar and the eight stages with the current one marked.
#[component]
fn PipelineSection(detail: DocumentDetail) -> impl IntoView {
    let row = detail.row;
    let retrying = row.status == "processing" && detail.error.is_some();
    let steps = detail
        .stages
        .into_iter()
        .map(|step| view! { <StageItem step /> })
        .collect_view();

    view! {
        <section class="kb-section" aria-labelledby="kb-pipeline-heading">
            <h2 id="kb-pipeline-heading">"Pipeline"</h2>
            <div aria-live="polite">
                <ProgressBar progress=row.progress text=row.progress_text failed=row.status == "failed" />
            </div>
            <ol class="kb-stages" data-testid="stages">{steps}</ol>
            {(row.status == "processing").then(|| view! {
                <p class="kb-muted">"This page refreshes every 2 seconds until the pipeline finishes."</p>
            })}
            {retrying.then(|| view! {
                <p class="cs-note" data-testid="retry-note">
                    {format!(
                        "The last attempt failed and will be retried: {}",
                        detail.error.clone().unwrap_or_default()
                    )}
                </p>
            })}
        </section>
    }
}

#[component]
fn StageItem(step: StageStep) -> impl IntoView {
    let class = format!("kb-stage kb-stage-{}", step.state);
    let current = matches!(step.state.as_str(), "current" | "failed");
    let state_words = match step.state.as_str() {
        "done" => "done",
        "current" => "current stage",
        "failed" => "failed",
        _ => "to do",
    };
    view! {
        <li
            class=class
            aria-current=current.then_some("step")
            data-testid="stage"
            data-stage=step.stage.clone()
            data-state=step.state.clone()
        >
            <span class="kb-stage-name">{stage_label(&step.stage)}</span>
            <span class="kb-stage-state">{state_words}</span>
        </li>
    }
}

/// Explains a failed stage and where it can be retried.
#[component]
fn FailedPanel(detail: DocumentDetail) -> impl IntoView {
    let stage = detail.row.stage.clone();
    let error = detail
        .error
        .unwrap_or_else(|| "the stage job ended without an error message".to_string());
    let next_step = if detail.is_admin {
        let href = format!("/admin/dead-letters?kind=knowledge.{stage}");
        view! {
            <p>
                "Fix the cause, then retry the job from "
                <A href=href attr:data-testid="dead-letters-link">"the dead letters"</A>
                "; the pipeline resumes at this stage."
            </p>
        }
        .into_any()
    } else {
        view! { <p>"Ask an admin of your tenant to retry it from the dead letters."</p> }.into_any()
    };
    view! {
        <div class="error-panel" role="alert" data-testid="document-error">
            <h2>{format!("The {stage} stage failed")}</h2>
            <p class="kb-wrap">{capitalize(&error)}</p>
            {next_step}
        </div>
    }
}

/// Shows the outcome of the last review or retirement after a hydrated submit. A plain post
/// returns to this page, which then shows the new status and reviews.
#[component]
fn ActionReports(
    review: ServerAction<ReviewKnowledgeDocument>,
    retire: ServerAction<RetireKnowledgeDocument>,
) -> impl IntoView {
    let reviewed = move || {
        review.value().get().and_then(Result::ok).map(|result| {
            let text = if !result.recorded {
                "You had reviewed this document before; that review stands.".to_string()
            } else if result.status == "published" {
                "Your approval is recorded, and the document is published.".to_string()
            } else if result.status == "rejected" {
                "Your rejection is recorded; the document will not be published.".to_string()
            } else {
                format!(
                    "Your approval is recorded: {} of {APPROVALS_NEEDED} so far.",
                    result.approvals
                )
            };
            view! { <p class="cs-notice" data-testid="review-report">{text}</p> }
        })
    };
    let retired = move || {
        matches!(retire.value().get(), Some(Ok(()))).then(|| {
            view! { <p class="cs-notice" data-testid="retire-report">"Retired. Its chunks are no longer searched."</p> }
        })
    };
    view! {
        <div class="cs-message-region" aria-live="polite">
            {reviewed}
            {retired}
        </div>
    }
}

/// Approve and reject share one form: the pressed button sends `decision`. The first approval
/// must carry the three scores, so the browser requires them then. Reject skips that check
/// because a rejection needs none.
#[component]
fn ReviewForm(
    id: String,
    scores_required: bool,
    review: ServerAction<ReviewKnowledgeDocument>,
) -> impl IntoView {
    let pending = review.pending();
    let error = move || review.value().get().and_then(Result::err).map(error_text);
    let scores_help = if scores_required {
        "The first approval scores accuracy, completeness and relevance from 0 to 1."
    } else {
        "Scores are optional now; the first approval has them."
    };
    let score = move |name: &'static str, label: &'static str| {
        let input_id = format!("kb-score-{name}");
        view! {
            <div class="kb-score">
                <label for=input_id.clone()>{label}</label>
                <input
                    id=input_id
                    name=name
                    type="number"
                    min="0"
                    max="1"
                    step="0.05"
                    inputmode="decimal"
                    required=scores_required
                    aria-describedby="kb-scores-help kb-review-error"
                    data-testid=format!("score-{name}")
                />
            </div>
        }
    };

    view! {
        <ActionForm action=review attr:class="cs-form kb-review-form" attr:data-testid="review-form">
            <h2>"Your review"</h2>
            <input type="hidden" name="id" value=id />
            <p id="kb-scores-help" class="kb-muted">{scores_help}</p>
            <div class="kb-scores">
                {score("accuracy", "Accuracy")}
                {score("completeness", "Completeness")}
                {score("relevance", "Relevance")}
            </div>
            <label for="kb-review-comment">"Comment"</label>
            <textarea
                id="kb-review-comment"
                name="comment"
                rows="3"
                maxlength=MAX_COMMENT_CHARS.to_string()
                aria-describedby="kb-comment-help kb-review-error"
                data-testid="review-comment"
            ></textarea>
            <p id="kb-comment-help" class="kb-muted">
                {format!("Required when rejecting; up to {MAX_COMMENT_CHARS} characters, kept in the audit trail.")}
            </p>
            <div id="kb-review-error" aria-live="polite">
                {move || error().map(|text| view! { <p class="field-error" data-testid="review-error">{text}</p> })}
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
                    formnovalidate=true
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
fn RetireForm(id: String, retire: ServerAction<RetireKnowledgeDocument>) -> impl IntoView {
    let pending = retire.pending();
    let error = move || retire.value().get().and_then(Result::err).map(error_text);

    view! {
        <ActionForm action=retire attr:class="cs-form kb-retire-form">
            <h2>"Retire"</h2>
            <input type="hidden" name="id" value=id />
            <p class="kb-muted">"Takes the document out of search and stops refreshing its source. Reviews and chunks stay for the record."</p>
            <div aria-live="polite">
                {move || error().map(|text| view! { <p class="field-error" data-testid="retire-error">{text}</p> })}
            </div>
            <button type="submit" class="button danger" data-testid="retire-button" disabled=move || pending.get()>
                {move || if pending.get() { "Retiring…" } else { "Retire document" }}
            </button>
        </ActionForm>
    }
}

#[component]
fn ReviewList(reviews: Vec<ReviewRow>) -> impl IntoView {
    if reviews.is_empty() {
        return view! { <p class="kb-muted" data-testid="reviews-empty">"No reviews yet."</p> }
            .into_any();
    }
    view! {
        <ul class="cs-decisions" data-testid="reviews">
            {reviews
                .into_iter()
                .map(|review| {
                    let verb = if review.decision == "approve" { "approved" } else { "rejected" };
                    let class = format!("badge badge-cs-{verb}");
                    view! {
                        <li data-testid="review">
                            <span class=class>{verb}</span>
                            " by "{review.reviewer}
                            {format!(" at {}", review.at)}
                            {(!review.scores.is_empty()).then(|| view! { <span class="kb-muted">{format!(" · {}", review.scores)}</span> })}
                            {review.comment.map(|comment| view! { <p class="cs-comment">{comment}</p> })}
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
    .into_any()
}

/// Renders the chunks in a collapsed list, closed by default because a manual has hundreds.
#[component]
fn ChunkSection(chunk_count: i64, chunks: Option<Vec<ChunkRow>>) -> impl IntoView {
    let body = match chunks {
        None => view! {
            <p class="kb-muted" data-testid="chunks-pending">"Chunks are listed here once the pipeline finishes."</p>
        }
        .into_any(),
        Some(chunks) if chunks.is_empty() => {
            view! { <p class="kb-muted" data-testid="chunks-empty">"This document has no chunks."</p> }.into_any()
        }
        Some(chunks) => {
            let items = chunks
                .into_iter()
                .map(|chunk| {
                    let heading = if chunk.section.is_empty() {
                        format!("#{}", chunk.ordinal)
                    } else {
                        format!("#{} · {}", chunk.ordinal, chunk.section)
                    };
                    view! {
                        <li class="kb-chunk" data-testid="chunk">
                            <p class="kb-chunk-head">{heading}</p>
                            <p class="kb-chunk-text">{chunk.text}</p>
                        </li>
                    }
                })
                .collect_view();
            let summary = if chunk_count == 1 {
                "Show the chunk".to_string()
            } else {
                format!("Show the {chunk_count} chunks")
            };
            view! {
                <details class="kb-chunks" data-testid="chunks">
                    <summary>{summary}</summary>
                    <ol>{items}</ol>
                </details>
            }
            .into_any()
        }
    };
    view! {
        <section class="kb-section" aria-labelledby="kb-chunks-heading">
            <h2 id="kb-chunks-heading">{format!("Chunks ({chunk_count})")}</h2>
            {body}
        </section>
    }
}
