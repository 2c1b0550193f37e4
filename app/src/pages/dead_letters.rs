//! The Dead letters pages for admins: the list with its summary and filters, and one dead
//! letter with its error chain, attempts, payload, retry and discard.
//!
//! Filters travel in the URL through a GET form, and retry and discard are `ActionForm`s, so
//! both pages work before hydration and without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Form, A};
use leptos_router::hooks::{use_params_map, use_query_map};
use leptos_router::params::ParamsMap;

use super::require_role;
use crate::dead_letters::{
    list_dead_letters, load_dead_letter, load_dead_letter_stats, DayCount, DeadLetterDetail,
    DeadLetterRow, DeadLetterStats, DiscardDeadLetter, KindClassCount, ListPage, ListQuery,
    RetryDeadLetters, RetryResult, ERROR_CLASSES, MAX_REASON_CHARS,
};

/// Path of the list page. Detail pages live below it.
const LIST_PATH: &str = "/admin/dead-letters";

/// Choices of the status filter. The backend lists `open` when none is given.
const STATUSES: [&str; 4] = ["open", "retried", "discarded", "all"];

/// Lists the tenant's dead letters with a summary, filters and a bulk retry.
#[component]
pub fn DeadLettersPage() -> impl IntoView {
    view! {
        <Title text="Dead letters · Siteline" />
        {require_role("admin", view! { <DeadLetterList /> })}
    }
}

/// Shows one dead letter and lets the admin retry or discard it.
#[component]
pub fn DeadLetterPage() -> impl IntoView {
    view! {
        <Title text="Dead letter · Siteline" />
        {require_role("admin", view! { <DeadLetterView /> })}
    }
}

#[component]
fn DeadLetterList() -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| params.with(list_query));
    let retry = ServerAction::<RetryDeadLetters>::new();
    // Each finished retry reloads the rows and the counts, because both change.
    let list = Resource::new(
        move || (query.get(), retry.version().get()),
        |(query, _)| list_dead_letters(query),
    );
    let stats = Resource::new(move || retry.version().get(), |_| load_dead_letter_stats());

    view! {
        <h1>"Dead letters"</h1>
        <p class="dl-lede">
            "Jobs that failed for good. Fix the cause, then retry them, or discard them with a reason."
        </p>
        <Transition fallback=|| view! { <p class="page-status">"Loading the summary…"</p> }>
            {move || Suspend::new(async move {
                match stats.await {
                    Ok(stats) => view! { <Summary stats /> }.into_any(),
                    Err(error) => load_error("The summary could not be loaded", error).into_any(),
                }
            })}
        </Transition>
        <FilterForm query />
        <RetryMessage retry params />
        <Transition fallback=|| view! { <p class="page-status">"Loading dead letters…"</p> }>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(page) => view! { <ResultTable page retry query=query.get_untracked() /> }.into_any(),
                    Err(error) => view! {
                        <div class="error-panel" role="alert" data-testid="list-error">
                            <h2>"The dead letters could not be listed"</h2>
                            <p>{error_text(error)}</p>
                            <p><a href=LIST_PATH>"Clear the filters"</a></p>
                        </div>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

/// Reads the filters from the URL. An empty value means "any".
fn list_query(params: &ParamsMap) -> ListQuery {
    let get = |key: &str| params.get(key).filter(|value| !value.trim().is_empty());
    ListQuery {
        kind: get("kind"),
        class: get("class"),
        critical: get("critical"),
        status: get("status"),
        from: get("from"),
        to: get("to"),
        q: get("q"),
        cursor: get("cursor"),
    }
}

/// Checks whether the query narrows the default list of open dead letters.
fn has_filters(query: &ListQuery) -> bool {
    let narrowing = [
        &query.kind,
        &query.class,
        &query.critical,
        &query.from,
        &query.to,
        &query.q,
    ];
    narrowing.iter().any(|field| field.is_some())
        || query
            .status
            .as_deref()
            .is_some_and(|status| status != "open")
}

/// Builds `?key=value&…` from the set fields of `query`, percent-encoded.
fn query_string(query: &ListQuery) -> String {
    let fields = [
        ("kind", &query.kind),
        ("class", &query.class),
        ("critical", &query.critical),
        ("status", &query.status),
        ("from", &query.from),
        ("to", &query.to),
        ("q", &query.q),
        ("cursor", &query.cursor),
    ];
    let pairs: Vec<String> = fields
        .iter()
        .filter_map(|(key, value)| {
            value
                .as_deref()
                .map(|value| format!("{key}={}", percent_encode(value)))
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// Percent-encodes every byte except the unreserved characters of RFC 3986.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Returns the sentence of a server function error.
fn error_text(error: ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) => message,
        other => other.to_string(),
    }
}

fn load_error(title: &'static str, error: ServerFnError) -> impl IntoView {
    view! {
        <div class="error-panel" role="alert">
            <h2>{title}</h2>
            <p>{error_text(error)}</p>
            <p>"Reload the page to try again."</p>
        </div>
    }
}

#[component]
fn Summary(stats: DeadLetterStats) -> impl IntoView {
    let alert = stats.open_critical > 0;
    view! {
        <section class="dl-summary" aria-label="Summary">
            <div class="dl-stats">
                <p class="dl-stat">
                    <span class="dl-stat-value" data-testid="open-count">{stats.open}</span>
                    <span class="dl-stat-label">"open"</span>
                </p>
                <p class="dl-stat" class:dl-stat-alert=alert>
                    <span class="dl-stat-value" data-testid="open-critical-count">
                        {stats.open_critical}
                    </span>
                    <span class="dl-stat-label">"open and critical"</span>
                </p>
            </div>
            <div class="dl-summary-grid">
                <DailyChart days=stats.last_7_days />
                <KindClassTable groups=stats.by_kind_class />
            </div>
        </section>
    }
}

/// Draws the last 7 days as SVG bars with the count above each bar, on the server, so the
/// chart needs no script and no inline style (the page's CSP forbids both).
#[component]
fn DailyChart(days: Vec<DayCount>) -> impl IntoView {
    const SLOT: i64 = 40;
    const BAR_WIDTH: i64 = 26;
    const BASELINE: i64 = 100;
    const MAX_BAR: i64 = 76;

    let max = days.iter().map(|day| day.count).max().unwrap_or(0).max(1);
    let description = days
        .iter()
        .map(|day| format!("{}: {}", day.day, day.count))
        .collect::<Vec<_>>()
        .join(", ");
    let label = format!("Dead letters per day, last 7 days. {description}");
    let width = SLOT * days.len().max(1) as i64;
    let bars = days
        .into_iter()
        .enumerate()
        .map(|(index, day)| {
            let height = day.count * MAX_BAR / max;
            let x = index as i64 * SLOT + (SLOT - BAR_WIDTH) / 2;
            let center = index as i64 * SLOT + SLOT / 2;
            // Month and day only, e.g. 12-04, because the year would crowd the axis.
            let short_day = day.day.get(5..).unwrap_or(&day.day).to_string();
            view! {
                <rect class="dl-bar" x=x y=BASELINE - height width=BAR_WIDTH height=height />
                <text class="dl-bar-count" x=center y=BASELINE - height - 4 text-anchor="middle">
                    {day.count}
                </text>
                <text class="dl-bar-day" x=center y=BASELINE + 16 text-anchor="middle">
                    {short_day}
                </text>
            }
        })
        .collect_view();

    view! {
        <figure class="dl-chart">
            <figcaption>"Failed per day, last 7 days (UTC)"</figcaption>
            <svg
                role="img"
                aria-label=label
                viewBox=format!("0 0 {width} 122")
                data-testid="daily-chart"
            >
                <line class="dl-axis" x1="0" y1=BASELINE x2=width y2=BASELINE />
                {bars}
            </svg>
        </figure>
    }
}

#[component]
fn KindClassTable(groups: Vec<KindClassCount>) -> impl IntoView {
    if groups.is_empty() {
        return view! { <p class="dl-none">"No open dead letters of any kind."</p> }.into_any();
    }
    view! {
        <div class="table-scroll" role="region" aria-label="Open dead letters per kind and class" tabindex="0">
            <table class="table dl-groups">
                <caption>"Open per kind and class"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Kind"</th>
                        <th scope="col">"Class"</th>
                        <th scope="col" class="num">"Open"</th>
                    </tr>
                </thead>
                <tbody>
                    {groups
                        .into_iter()
                        .map(|group| view! {
                            <tr>
                                <td>{group.kind}</td>
                                <td>{group.class}</td>
                                <td class="num">{group.count}</td>
                            </tr>
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// Renders the filters as a GET form, so they live in the URL and work without JavaScript.
#[component]
fn FilterForm(query: Memo<ListQuery>) -> impl IntoView {
    let text = move |field: fn(&ListQuery) -> &Option<String>| {
        move || query.with(|query| field(query).clone().unwrap_or_default())
    };
    let is_selected = move |field: fn(&ListQuery) -> &Option<String>, value: &'static str| {
        move || query.with(|query| field(query).as_deref() == Some(value))
    };
    let class_options = ERROR_CLASSES
        .iter()
        .map(|&class| {
            view! { <option value=class selected=is_selected(|query| &query.class, class)>{class}</option> }
        })
        .collect_view();
    let status_options = STATUSES
        .iter()
        .map(|&status| {
            let selected =
                move || query.with(|query| query.status.as_deref().unwrap_or("open") == status);
            view! { <option value=status selected=selected>{status}</option> }
        })
        .collect_view();

    view! {
        <section class="dl-filters" aria-label="Filters">
            <Form method="get" action=LIST_PATH>
                <div class="dl-filter-grid">
                    <div class="dl-field">
                        <label for="dl-kind">"Kind"</label>
                        <input
                            id="dl-kind"
                            name="kind"
                            type="text"
                            placeholder="e.g. demo.fail"
                            value=text(|query| &query.kind)
                        />
                    </div>
                    <div class="dl-field">
                        <label for="dl-class">"Error class"</label>
                        <select id="dl-class" name="class">
                            <option value="">"any"</option>
                            {class_options}
                        </select>
                    </div>
                    <div class="dl-field">
                        <label for="dl-critical">"Critical"</label>
                        <select id="dl-critical" name="critical">
                            <option value="">"any"</option>
                            <option value="yes" selected=is_selected(|query| &query.critical, "yes")>"yes"</option>
                            <option value="no" selected=is_selected(|query| &query.critical, "no")>"no"</option>
                        </select>
                    </div>
                    <div class="dl-field">
                        <label for="dl-status">"Status"</label>
                        <select id="dl-status" name="status">{status_options}</select>
                    </div>
                    <div class="dl-field dl-field-date">
                        <label for="dl-from">"Failed from"</label>
                        <input id="dl-from" name="from" type="date" value=text(|query| &query.from) />
                    </div>
                    <div class="dl-field dl-field-date">
                        <label for="dl-to">"Failed until"</label>
                        <input id="dl-to" name="to" type="date" value=text(|query| &query.to) />
                    </div>
                    <div class="dl-field dl-field-wide">
                        <label for="dl-q">"Search payload and errors"</label>
                        <input id="dl-q" name="q" type="search" value=text(|query| &query.q) />
                    </div>
                </div>
                <div class="dl-filter-actions">
                    <button type="submit" class="button" data-testid="apply-filters">"Apply filters"</button>
                    <a class="button secondary" href=LIST_PATH>"Clear"</a>
                </div>
            </Form>
        </section>
    }
}

/// Shows the outcome of the last retry. It comes from the action after a hydrated submit, or
/// from the `retried` and `skipped` counts that the server adds to the URL after a plain form
/// post.
#[component]
fn RetryMessage(retry: ServerAction<RetryDeadLetters>, params: Memo<ParamsMap>) -> impl IntoView {
    let from_url = move || {
        params.with(|params| {
            let retried = params.get("retried")?.parse::<usize>().ok()?;
            let skipped = params.get("skipped")?.parse::<usize>().ok()?;
            Some(RetryResult::message(retried, skipped))
        })
    };
    let message = move || match retry.value().get() {
        Some(Ok(result)) => Some(Ok(RetryResult::message(
            result.retried.len(),
            result.skipped.len(),
        ))),
        Some(Err(error)) => Some(Err(error_text(error))),
        None => from_url().map(Ok),
    };

    view! {
        <div class="dl-message-region" aria-live="polite">
            {move || message().map(|message| match message {
                Ok(text) => view! { <p class="dl-notice" data-testid="retry-report">{text}</p> }.into_any(),
                Err(text) => view! { <p class="field-error" data-testid="retry-error">{text}</p> }.into_any(),
            })}
        </div>
    }
}

#[component]
fn ResultTable(
    page: ListPage,
    retry: ServerAction<RetryDeadLetters>,
    query: ListQuery,
) -> impl IntoView {
    if page.rows.is_empty() {
        return empty_list(&query).into_any();
    }
    let older = page.next_cursor.map(|cursor| {
        let next = ListQuery {
            cursor: Some(cursor),
            ..query.clone()
        };
        format!("{LIST_PATH}{}", query_string(&next))
    });
    let count_text = format!("{} shown, newest first.", page.rows.len());
    let pending = retry.pending();

    view! {
        <ActionForm action=retry attr:class="dl-results">
            <div class="dl-toolbar">
                <button type="submit" class="button" data-testid="retry-selected" disabled=move || pending.get()>
                    {move || if pending.get() { "Retrying…" } else { "Retry selected" }}
                </button>
                <span class="dl-muted">{count_text}</span>
            </div>
            <div class="table-scroll" role="region" aria-label="Dead letters" tabindex="0">
                <table class="table dl-table">
                    <thead>
                        <tr>
                            <th scope="col"><span class="visually-hidden">"Select"</span></th>
                            <th scope="col">"Failed at"</th>
                            <th scope="col">"Kind"</th>
                            <th scope="col">"Class"</th>
                            <th scope="col">"Critical"</th>
                            <th scope="col" class="num">"Attempts"</th>
                            <th scope="col">"Last error"</th>
                            <th scope="col">"Status"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {page.rows.into_iter().map(|row| view! { <ResultRow row /> }).collect_view()}
                    </tbody>
                </table>
            </div>
            {older.map(|href| view! { <p class="dl-older"><A href=href>"Older dead letters"</A></p> })}
        </ActionForm>
    }
    .into_any()
}

#[component]
fn ResultRow(row: DeadLetterRow) -> impl IntoView {
    let href = format!("{LIST_PATH}/{}", row.id);
    let label = format!("Select the {} dead letter of {}", row.kind, row.failed_at);
    let open = row.status == "open";
    let row_id = row.id.clone();

    view! {
        <tr data-testid="dead-letter-row" data-id=row_id>
            <td>
                // `ids[]` is the list syntax of the server function's form decoder.
                <input
                    type="checkbox"
                    name="ids[]"
                    value=row.id
                    aria-label=label
                    disabled=!open
                    data-testid="dead-letter-select"
                />
            </td>
            <td class="dl-nowrap">{row.failed_at}<br /><span class="dl-muted">{row.age}</span></td>
            <td><A href=href attr:data-testid="dead-letter-link">{row.kind}</A></td>
            <td>{row.class}</td>
            <td>{critical_badge(row.critical)}</td>
            <td class="num">{row.attempts}</td>
            <td class="dl-error-text">{row.error}</td>
            <td>{status_badge(row.status)}</td>
        </tr>
    }
}

fn critical_badge(critical: bool) -> impl IntoView {
    if critical {
        view! { <span class="badge badge-critical">"critical"</span> }.into_any()
    } else {
        view! { <span class="dl-muted">"no"</span> }.into_any()
    }
}

fn status_badge(status: String) -> impl IntoView {
    let class = format!("badge badge-{status}");
    view! { <span class=class data-testid="status-badge">{status}</span> }
}

/// Renders the empty state, whose next step depends on whether filters hid every row.
fn empty_list(query: &ListQuery) -> impl IntoView {
    if has_filters(query) {
        view! {
            <section class="empty-state" data-testid="empty-list">
                <h2>"No dead letters match these filters"</h2>
                <p>"Widen the dates, pick another status or clear the filters."</p>
                <a class="button" href=LIST_PATH>"Clear filters"</a>
            </section>
        }
        .into_any()
    } else {
        view! {
            <section class="empty-state" data-testid="empty-list">
                <h2>"No open dead letters"</h2>
                <p>
                    "Every job has finished or is still being retried. "
                    "Earlier dead letters keep their status."
                </p>
                <a class="button" href=format!("{LIST_PATH}?status=all")>"Show all statuses"</a>
            </section>
        }
        .into_any()
    }
}

#[component]
fn DeadLetterView() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = Memo::new(move |_| params.with(|params| params.get("id").unwrap_or_default()));
    let retry = ServerAction::<RetryDeadLetters>::new();
    let discard = ServerAction::<DiscardDeadLetter>::new();
    // Only a successful discard reloads, so a rejected one keeps the typed reason on screen.
    let discarded = move || matches!(discard.value().get(), Some(Ok(())));
    let detail = Resource::new(
        move || (id.get(), retry.version().get(), discarded()),
        |(id, _, _)| load_dead_letter(id),
    );

    view! {
        <p class="dl-back"><A href=LIST_PATH>"← All dead letters"</A></p>
        <h1>"Dead letter"</h1>
        <RetryMessage retry params=query />
        <div aria-live="polite">
            {move || discarded().then(|| view! {
                <p class="dl-notice" data-testid="discard-report">"Discarded. The job will not run again."</p>
            })}
        </div>
        <Transition fallback=|| view! { <p class="page-status">"Loading the dead letter…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(detail) => view! { <DetailBody detail retry discard /> }.into_any(),
                    Err(error) => view! {
                        <div class="error-panel" role="alert" data-testid="detail-error">
                            <h2>"The dead letter could not be loaded"</h2>
                            <p>{error_text(error)}</p>
                            <p><a href=LIST_PATH>"Back to all dead letters"</a></p>
                        </div>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn DetailBody(
    detail: DeadLetterDetail,
    retry: ServerAction<RetryDeadLetters>,
    discard: ServerAction<DiscardDeadLetter>,
) -> impl IntoView {
    let row = detail.row;
    let open = row.status == "open";
    let waiting = matches!(detail.job_status.as_str(), "queued" | "running");
    let chain = detail
        .error_chain
        .into_iter()
        .map(|sentence| view! { <li>{sentence}</li> })
        .collect_view();

    view! {
        <section class="dl-facts" aria-label="Facts">
            <dl>
                <div><dt>"Kind"</dt><dd data-testid="detail-kind">{row.kind}</dd></div>
                <div><dt>"Status"</dt><dd data-testid="detail-status">{status_badge(row.status)}</dd></div>
                <div>
                    <dt>"Job status now"</dt>
                    <dd data-testid="detail-job-status">{detail.job_status.clone()}</dd>
                </div>
                <div><dt>"Error class"</dt><dd>{row.class}</dd></div>
                <div><dt>"Critical"</dt><dd>{critical_badge(row.critical)}</dd></div>
                <div><dt>"Attempts"</dt><dd>{format!("{} (run {})", row.attempts, detail.run)}</dd></div>
                <div><dt>"Failed at"</dt><dd>{format!("{} ({})", row.failed_at, row.age)}</dd></div>
                <div><dt>"Correlation id"</dt><dd class="mono">{detail.correlation_id}</dd></div>
                <div><dt>"Job id"</dt><dd class="mono">{detail.job_id}</dd></div>
                <div><dt>"Dead letter id"</dt><dd class="mono">{row.id.clone()}</dd></div>
            </dl>
            {waiting.then(|| view! {
                <p class="dl-muted">
                    {format!("The job is {} again. Reload the page to see how it ends.", detail.job_status)}
                </p>
            })}
            {detail.resolution.map(|text| view! { <p data-testid="detail-resolution">{capitalize(&text)}</p> })}
            {detail.discard_reason.map(|reason| view! {
                <p>"Reason: " <span class="dl-reason">{reason}</span></p>
            })}
        </section>
        {open.then(|| view! { <DetailActions id=row.id retry discard /> })}
        <section class="dl-section">
            <h2>"Error chain"</h2>
            <ol class="dl-chain" data-testid="error-chain">{chain}</ol>
        </section>
        <section class="dl-section">
            <h2>"Attempts"</h2>
            <AttemptTable attempts=detail.attempts />
        </section>
        <section class="dl-section">
            <h2>"Payload"</h2>
            <p class="dl-muted">"The job's arguments, with secrets and personal data redacted."</p>
            <pre class="dl-payload" tabindex="0" data-testid="payload">{detail.payload}</pre>
        </section>
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[component]
fn DetailActions(
    id: String,
    retry: ServerAction<RetryDeadLetters>,
    discard: ServerAction<DiscardDeadLetter>,
) -> impl IntoView {
    let retrying = retry.pending();
    let discarding = discard.pending();
    let discard_error = move || discard.value().get().and_then(Result::err).map(error_text);
    let retry_id = id.clone();

    view! {
        <section class="dl-section dl-actions" aria-label="Actions">
            <ActionForm action=retry attr:class="dl-retry">
                <input type="hidden" name="ids[]" value=retry_id />
                <button type="submit" class="button" data-testid="retry-button" disabled=move || retrying.get()>
                    {move || if retrying.get() { "Retrying…" } else { "Retry" }}
                </button>
                <p class="dl-muted">"Queues the job again with a fresh retry budget."</p>
            </ActionForm>
            <ActionForm action=discard attr:class="form dl-discard">
                <input type="hidden" name="id" value=id />
                <label for="discard-reason">"Reason for discarding"</label>
                <textarea
                    id="discard-reason"
                    name="reason"
                    rows="3"
                    required
                    maxlength=MAX_REASON_CHARS.to_string()
                    aria-describedby="discard-reason-help discard-error"
                    data-testid="discard-reason"
                ></textarea>
                <p id="discard-reason-help" class="dl-muted">
                    {format!("Required, up to {MAX_REASON_CHARS} characters; kept in the audit trail.")}
                </p>
                <div id="discard-error" aria-live="polite">
                    {move || discard_error().map(|text| view! {
                        <p class="field-error" data-testid="discard-error">{text}</p>
                    })}
                </div>
                <button
                    type="submit"
                    class="button danger"
                    data-testid="discard-button"
                    disabled=move || discarding.get()
                >
                    {move || if discarding.get() { "Discarding…" } else { "Discard" }}
                </button>
            </ActionForm>
        </section>
    }
}

#[component]
fn AttemptTable(attempts: Vec<crate::dead_letters::AttemptRow>) -> impl IntoView {
    if attempts.is_empty() {
        return view! { <p class="dl-none">"No attempts were recorded."</p> }.into_any();
    }
    view! {
        <div class="table-scroll" role="region" aria-label="Attempts" tabindex="0">
            <table class="table dl-attempts" data-testid="attempts">
                <thead>
                    <tr>
                        <th scope="col" class="num">"Run"</th>
                        <th scope="col" class="num">"Attempt"</th>
                        <th scope="col">"Started"</th>
                        <th scope="col">"Finished"</th>
                        <th scope="col">"Class"</th>
                        <th scope="col">"Error"</th>
                        <th scope="col">"Outcome"</th>
                        <th scope="col">"Delay"</th>
                    </tr>
                </thead>
                <tbody>
                    {attempts
                        .into_iter()
                        .map(|attempt| view! {
                            <tr>
                                <td class="num">{attempt.run}</td>
                                <td class="num">{attempt.attempt}</td>
                                <td class="dl-nowrap">{attempt.started}</td>
                                <td class="dl-nowrap">{attempt.finished}</td>
                                <td>{attempt.class}</td>
                                <td class="dl-error-text">{attempt.error}</td>
                                <td>{attempt.outcome}</td>
                                <td class="dl-nowrap">{attempt.delay}</td>
                            </tr>
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
