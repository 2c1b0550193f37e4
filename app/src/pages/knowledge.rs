//! The Knowledge pages: search and the document list for every role, the add forms for admins,
//! the review queue for approvers and admins, and one document with its progress and chunks.
//!
//! Search and the status filter are GET forms, the URL submission and the reviews are
//! `ActionForm`s, and the upload is a plain multipart form that the server crate handles, so
//! every page works before hydration and without JavaScript.

mod document;
mod parts;
mod review;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Form, A};
use leptos_router::hooks::use_query_map;
use leptos_router::params::ParamsMap;

pub use document::KnowledgeDocumentPage;
use parts::{authority_badge, document_path, status_badge, ProgressBar, SectionLinks};
pub use review::KnowledgeReviewPage;

use super::change_parts::error_text;
use crate::account::CurrentUser;
use crate::knowledge::{
    list_knowledge_documents, search_knowledge, DocumentList, DocumentRow, SearchResult,
    SubmitKnowledgeUrl, AUTHORITIES, DEFAULT_AUTHORITY, KNOWLEDGE_PATH, LIST_FILTERS,
    MAX_QUERY_CHARS, MAX_TITLE_CHARS, MAX_URL_BYTES, UPLOAD_ERROR_PARAM, UPLOAD_PATH,
};

/// File types the upload's file picker offers; the server recognises formats by content.
const UPLOAD_ACCEPT: &str = ".html,.htm,.pdf,.md,.markdown,.txt,.json,.xml,.docx";

/// Searches the knowledge base and lists its documents; admins also add documents here.
#[component]
pub fn KnowledgePage() -> impl IntoView {
    let user = use_context::<CurrentUser>();
    let is_admin = user.as_ref().is_some_and(|user| user.has("admin"));
    let params = use_query_map();
    let query = Memo::new(move |_| params.with(ListParams::read));

    view! {
        <Title text="Knowledge · Siteline" />
        <h1>"Knowledge"</h1>
        <p class="kb-lede">
            "Documents that recommendations cite. Each one passes the pipeline, then two reviewers; only published documents are searchable."
        </p>
        <SectionLinks />
        <SearchSection query />
        {is_admin.then(|| view! { <AddPanel params /> })}
        <DocumentsSection query is_admin />
    }
}

/// The page's URL parameters. Empty values count as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ListParams {
    q: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
}

impl ListParams {
    fn read(params: &ParamsMap) -> Self {
        let get = |key: &str| params.get(key).filter(|value| !value.trim().is_empty());
        Self {
            q: get("q"),
            status: get("status").filter(|status| status != "all"),
            cursor: get("cursor"),
        }
    }
}

#[component]
fn SearchSection(query: Memo<ListParams>) -> impl IntoView {
    let q = Memo::new(move |_| query.with(|query| query.q.clone()));
    let results = Resource::new(
        move || q.get(),
        |q| async move {
            match q {
                Some(q) => search_knowledge(q).await.map(Some),
                None => Ok(None),
            }
        },
    );
    let status = move || query.with(|query| query.status.clone());

    view! {
        <section class="kb-section kb-search" aria-labelledby="kb-search-heading">
            <h2 id="kb-search-heading">"Search published documents"</h2>
            <Form method="get" action=KNOWLEDGE_PATH attr:class="cs-filter kb-search-form">
                <label for="kb-q" class="visually-hidden">"Search words"</label>
                <input
                    id="kb-q"
                    name="q"
                    type="search"
                    maxlength=MAX_QUERY_CHARS.to_string()
                    placeholder="e.g. exit route signs"
                    value=move || q.get().unwrap_or_default()
                    data-testid="search-input"
                />
                {move || status().map(|status| view! { <input type="hidden" name="status" value=status /> })}
                <button type="submit" class="button" data-testid="search-button">"Search"</button>
            </Form>
            <Transition fallback=|| view! { <p class="page-status">"Searching the knowledge base…"</p> }>
                {move || Suspend::new(async move {
                    match results.await {
                        Ok(None) => ().into_any(),
                        Ok(Some(hits)) => view! { <SearchResults hits q=q.get_untracked().unwrap_or_default() /> }.into_any(),
                        Err(error) => view! {
                            <div class="error-panel" role="alert" data-testid="search-error">
                                <h3>"The search failed"</h3>
                                <p>{error_text(error)}</p>
                            </div>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn SearchResults(hits: Vec<SearchResult>, q: String) -> impl IntoView {
    if hits.is_empty() {
        return view! {
            <div class="empty-state" data-testid="search-empty">
                <p>{format!("No published passage matches \u{201c}{q}\u{201d}.")}</p>
                <p class="kb-muted">"Try other words. Documents in the pipeline or in review are not searched until two reviewers approve them."</p>
            </div>
        }
        .into_any();
    }
    let count = format!(
        "{} best passages for \u{201c}{q}\u{201d}, best first.",
        hits.len()
    );
    let items = hits
        .into_iter()
        .map(|hit| {
            let href = document_path(&hit.document_id);
            view! {
                <li class="kb-result" data-testid="search-result" data-chunk-id=hit.chunk_id>
                    <div class="kb-result-head">
                        <A href=href attr:class="kb-result-title">{hit.title}</A>
                        {authority_badge(&hit.authority)}
                        <span class="kb-muted kb-result-score">{format!("score {}", hit.score)}</span>
                    </div>
                    {(!hit.section.is_empty()).then(|| view! { <p class="kb-section-path">{hit.section}</p> })}
                    <p class="kb-excerpt">{hit.excerpt}</p>
                </li>
            }
        })
        .collect_view();

    view! {
        <p class="kb-muted" aria-live="polite">{count}</p>
        <ol class="kb-results" data-testid="search-results">{items}</ol>
    }
    .into_any()
}

/// Renders the admin's forms: by URL (a server function) and by upload (a plain multipart
/// post).
#[component]
fn AddPanel(params: Memo<ParamsMap>) -> impl IntoView {
    let submit_url = ServerAction::<SubmitKnowledgeUrl>::new();
    let pending = submit_url.pending();
    let upload_error = move || params.with(|params| params.get(UPLOAD_ERROR_PARAM));
    let url_error = move || {
        submit_url
            .value()
            .get()
            .and_then(Result::err)
            .map(error_text)
    };

    view! {
        <section class="kb-section kb-add" id="kb-add" aria-labelledby="kb-add-heading" data-testid="add-panel">
            <h2 id="kb-add-heading">"Add a document"</h2>
            <div class="kb-add-grid">
                <ActionForm action=submit_url attr:class="cs-form kb-form" attr:data-testid="url-form">
                    <h3>"By URL"</h3>
                    <label for="kb-url">"URL"</label>
                    <input
                        id="kb-url"
                        name="url"
                        type="url"
                        required
                        maxlength=MAX_URL_BYTES.to_string()
                        placeholder="https://example.com/manual.pdf"
                        aria-describedby="kb-url-error"
                    />
                    <label for="kb-url-title">"Title (optional)"</label>
                    <input id="kb-url-title" name="title" type="text" maxlength=MAX_TITLE_CHARS.to_string() />
                    <AuthoritySelect id="kb-url-authority" />
                    <div id="kb-url-error" aria-live="polite">
                        {move || url_error().map(|text| view! { <p class="field-error" data-testid="url-error">{text}</p> })}
                    </div>
                    <button type="submit" class="button" data-testid="submit-url" disabled=move || pending.get()>
                        {move || if pending.get() { "Adding…" } else { "Add from URL" }}
                    </button>
                </ActionForm>
                <form
                    method="post"
                    action=UPLOAD_PATH
                    enctype="multipart/form-data"
                    class="cs-form kb-form"
                    data-testid="upload-form"
                >
                    <h3>"By upload"</h3>
                    <label for="kb-file">"File"</label>
                    <input
                        id="kb-file"
                        name="file"
                        type="file"
                        required
                        accept=UPLOAD_ACCEPT
                        aria-describedby="kb-file-help kb-upload-error"
                        data-testid="upload-file"
                    />
                    <p id="kb-file-help" class="kb-muted">"HTML, PDF, Markdown, plain text, JSON, XML or DOCX."</p>
                    <label for="kb-upload-title">"Title (optional)"</label>
                    <input id="kb-upload-title" name="title" type="text" maxlength=MAX_TITLE_CHARS.to_string() />
                    <AuthoritySelect id="kb-upload-authority" />
                    <div id="kb-upload-error" aria-live="polite">
                        {move || upload_error().map(|text| view! { <p class="field-error" data-testid="upload-error">{text}</p> })}
                    </div>
                    <button type="submit" class="button" data-testid="upload-button">"Upload"</button>
                </form>
            </div>
        </section>
    }
}

/// Renders the authority choice of a submission form.
#[component]
fn AuthoritySelect(id: &'static str) -> impl IntoView {
    let options = AUTHORITIES
        .iter()
        .map(|&authority| {
            view! { <option value=authority selected={authority == DEFAULT_AUTHORITY}>{authority}</option> }
        })
        .collect_view();
    view! {
        <label for=id>"Authority"</label>
        <select id=id name="authority">{options}</select>
    }
}

#[component]
fn DocumentsSection(query: Memo<ListParams>, is_admin: bool) -> impl IntoView {
    let list = Resource::new(
        move || query.with(|query| (query.status.clone(), query.cursor.clone())),
        |(status, cursor)| list_knowledge_documents(status, cursor),
    );

    view! {
        <section class="kb-section" aria-labelledby="kb-documents-heading">
            <h2 id="kb-documents-heading">"Documents"</h2>
            <StatusFilter query />
            <Transition fallback=|| view! { <p class="page-status">"Loading documents…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(list) => view! { <DocumentTable list query=query.get_untracked() is_admin /> }.into_any(),
                        Err(error) => view! {
                            <div class="error-panel" role="alert" data-testid="list-error">
                                <h3>"The documents could not be listed"</h3>
                                <p>{error_text(error)}</p>
                                <p><a href=KNOWLEDGE_PATH>"Show all documents"</a></p>
                            </div>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// Renders the status filter, a GET form that keeps the search words.
#[component]
fn StatusFilter(query: Memo<ListParams>) -> impl IntoView {
    let options = LIST_FILTERS
        .iter()
        .map(|&(value, label)| {
            let selected =
                move || query.with(|query| query.status.as_deref().unwrap_or("all") == value);
            view! { <option value=value selected=selected>{label}</option> }
        })
        .collect_view();
    let q = move || query.with(|query| query.q.clone());

    view! {
        <Form method="get" action=KNOWLEDGE_PATH attr:class="cs-filter">
            <label for="kb-status">"Status"</label>
            <select id="kb-status" name="status">{options}</select>
            {move || q().map(|q| view! { <input type="hidden" name="q" value=q /> })}
            <button type="submit" class="button secondary" data-testid="apply-status">"Show"</button>
        </Form>
    }
}

#[component]
fn DocumentTable(list: DocumentList, query: ListParams, is_admin: bool) -> impl IntoView {
    if list.rows.is_empty() {
        return empty_list(&query, is_admin).into_any();
    }
    let older = list.next_cursor.map(|cursor| {
        let mut pairs = vec![format!(
            "cursor={}",
            crate::knowledge::percent_encode(&cursor)
        )];
        if let Some(status) = &query.status {
            pairs.push(format!(
                "status={}",
                crate::knowledge::percent_encode(status)
            ));
        }
        format!("{KNOWLEDGE_PATH}?{}", pairs.join("&"))
    });
    let count = format!("{} shown, newest first.", list.rows.len());

    view! {
        <p class="kb-muted">{count}</p>
        <div class="table-scroll" role="region" aria-label="Documents" tabindex="0">
            <table class="table kb-table">
                <thead>
                    <tr>
                        <th scope="col">"Title"</th>
                        <th scope="col">"Source"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Progress"</th>
                        <th scope="col">"Submitted"</th>
                    </tr>
                </thead>
                <tbody>
                    {list.rows.into_iter().map(|row| view! { <DocumentTableRow row /> }).collect_view()}
                </tbody>
            </table>
        </div>
        {older.map(|href| view! { <p class="kb-older"><A href=href>"Older documents"</A></p> })}
    }
    .into_any()
}

#[component]
fn DocumentTableRow(row: DocumentRow) -> impl IntoView {
    let href = document_path(&row.id);
    let progress = row.shows_progress().then(|| {
        view! {
            <ProgressBar
                progress=row.progress
                text=row.progress_text.clone()
                failed=row.status == "failed"
            />
        }
    });
    let version = (row.version > 1).then(|| format!(" (version {})", row.version));

    view! {
        <tr data-testid="document-row" data-id=row.id.clone()>
            <td class="kb-title-cell">
                <A href=href attr:data-testid="document-link">{row.title}</A>
                {version}
                <br />
                {authority_badge(&row.authority)}
            </td>
            <td class="kb-source-cell">
                <span class="kb-muted">{row.source_kind}</span>
                <br />
                <span class="kb-source">{row.source}</span>
            </td>
            <td>{status_badge(&row.status)}</td>
            <td class="kb-progress-cell">{progress}</td>
            <td class="cs-nowrap">{row.created_at}<br /><span class="kb-muted">{row.age}</span></td>
        </tr>
    }
}

/// Renders the empty state, whose next step depends on the filter and the caller's role.
fn empty_list(query: &ListParams, is_admin: bool) -> impl IntoView {
    if query.status.is_some() || query.cursor.is_some() {
        return view! {
            <section class="empty-state" data-testid="documents-empty">
                <h3>"No documents in this status"</h3>
                <p>"Pick another status, or show every document."</p>
                <a class="button" href=KNOWLEDGE_PATH>"Show all documents"</a>
            </section>
        }
        .into_any();
    }
    if is_admin {
        view! {
            <section class="empty-state" data-testid="documents-empty">
                <h3>"No documents yet"</h3>
                <p>"Add the regulations, manuals and site rules that recommendations should cite."</p>
                <a class="button" href="#kb-add">"Add a document"</a>
            </section>
        }
        .into_any()
    } else {
        view! {
            <section class="empty-state" data-testid="documents-empty">
                <h3>"No documents yet"</h3>
                <p>"An admin of your tenant adds documents; they appear here while they are processed and reviewed."</p>
            </section>
        }
        .into_any()
    }
}
