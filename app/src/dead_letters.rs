//! Dead letters for admins, as server functions: list, statistics, detail, retry and discard.
//!
//! Values cross to the browser as display-ready text formatted on the server, so the browser
//! build needs neither the backend's types nor a date library.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Dead letters on one page of the list.
pub const PAGE_SIZE: i64 = 50;

/// Maximum length of a discard reason, in characters. The backend enforces the same limit.
pub const MAX_REASON_CHARS: usize = 500;

/// Error class names in the order of the backend's retry table (`ErrorClass::ALL`), for the
/// class filter. A test below keeps the two lists equal.
pub const ERROR_CLASSES: [&str; 6] = [
    "database",
    "network",
    "model_provider",
    "rate_limited",
    "circuit_open",
    "permanent",
];

/// Filters of the dead-letter list as the page's URL carries them; every field is optional
/// and an empty string means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Exact job kind, e.g. `demo.fail`.
    pub kind: Option<String>,
    /// Error class, one of [`ERROR_CLASSES`].
    pub class: Option<String>,
    /// `yes`, `no`, or empty for any.
    pub critical: Option<String>,
    /// `open` (the default), `retried`, `discarded` or `all`.
    pub status: Option<String>,
    /// First day, `YYYY-MM-DD` (UTC).
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC).
    pub to: Option<String>,
    /// Text searched for in the payload and the error chain.
    pub q: Option<String>,
    /// Id of the last dead letter of the previous page.
    pub cursor: Option<String>,
}

/// A dead letter as a row of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRow {
    /// Dead letter id.
    pub id: String,
    /// Job kind.
    pub kind: String,
    /// Error class of the last failure.
    pub class: String,
    /// The last error's sentence.
    pub error: String,
    /// Attempts made.
    pub attempts: i32,
    /// Whether the kind raises alerts.
    pub critical: bool,
    /// open, retried or discarded.
    pub status: String,
    /// When the job failed for good, as `YYYY-MM-DD HH:MM:SS UTC`.
    pub failed_at: String,
    /// Time since the failure, e.g. `5 min ago`.
    pub age: String,
}

/// One page of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage {
    /// Newest first.
    pub rows: Vec<DeadLetterRow>,
    /// Pass as `cursor` for older rows; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Open dead letters of one kind and class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindClassCount {
    /// Job kind.
    pub kind: String,
    /// Error class.
    pub class: String,
    /// Open dead letters.
    pub count: i64,
}

/// Dead letters that failed on one day, in any status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCount {
    /// The day (UTC), `YYYY-MM-DD`.
    pub day: String,
    /// Dead letters of that day.
    pub count: i64,
}

/// Numbers of the page's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterStats {
    /// Open dead letters.
    pub open: i64,
    /// Open critical dead letters.
    pub open_critical: i64,
    /// Open dead letters per kind and class, largest first.
    pub by_kind_class: Vec<KindClassCount>,
    /// The last 7 days, oldest first.
    pub last_7_days: Vec<DayCount>,
}

/// One attempt of the job, from the dead letter's attempt history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRow {
    /// Run of the job: 1, plus one per retry from this page.
    pub run: String,
    /// Attempt number within the job's life.
    pub attempt: String,
    /// Start time, or empty when unknown.
    pub started: String,
    /// End time.
    pub finished: String,
    /// Error class.
    pub class: String,
    /// Sanitized error chain, joined by colons.
    pub error: String,
    /// `retry` or `dead`.
    pub outcome: String,
    /// Wait before the next attempt, e.g. `1.5 s`; empty after the last attempt.
    pub delay: String,
}

/// A dead letter with everything the detail page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterDetail {
    /// The list fields.
    pub row: DeadLetterRow,
    /// The failed job's id.
    pub job_id: String,
    /// The run of the job that died.
    pub run: i32,
    /// The job's state now: after a retry queued, running, succeeded or dead again.
    pub job_status: String,
    /// Ties the job to the request that queued it and to its logs.
    pub correlation_id: String,
    /// The error sentence and its causes, outermost first.
    pub error_chain: Vec<String>,
    /// Attempt history, oldest first.
    pub attempts: Vec<AttemptRow>,
    /// The job's arguments with secrets and personal data redacted, as indented JSON.
    pub payload: String,
    /// The resolution with its actor and time, e.g. `retried by ana@example.com at …`.
    pub resolution: Option<String>,
    /// The reason given for the discard.
    pub discard_reason: Option<String>,
}

/// Dead letters a retry queued again and those it left alone, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryResult {
    /// Dead letters whose job was queued again.
    pub retried: Vec<String>,
    /// Dead letters already retried or discarded, or unknown.
    pub skipped: Vec<String>,
}

impl RetryResult {
    /// Builds the sentence the pages show after a retry.
    pub fn message(retried: usize, skipped: usize) -> String {
        format!("Retried {retried}, skipped {skipped} (already retried or discarded).")
    }
}

/// Lists the tenant's dead letters matching `query`, newest first. Admins only.
///
/// `query` defaults because the form encoding sends nothing at all for a query without filters.
#[server(prefix = "/sfn", endpoint = "dead-letters")]
pub async fn list_dead_letters(
    #[server(default)] query: ListQuery,
) -> Result<ListPage, ServerFnError> {
    use backend::jobs::dead_letters;

    let admin = ssr::Admin::authorize().await?;
    let filter = ssr::filter(&query).map_err(|error| admin.fail(error))?;
    let items = dead_letters::list(&admin.state.pool, Some(admin.tenant()), &filter)
        .await
        .map_err(|error| admin.fail(error.into()))?;

    let next_cursor = (items.len() as i64 == PAGE_SIZE)
        .then(|| items.last().map(|item| item.id.to_string()))
        .flatten();
    Ok(ListPage {
        rows: items.into_iter().map(ssr::row).collect(),
        next_cursor,
    })
}

/// Counts open dead letters and the failures of the last 7 days. Admins only.
#[server(prefix = "/sfn", endpoint = "dead-letter-stats")]
pub async fn load_dead_letter_stats() -> Result<DeadLetterStats, ServerFnError> {
    use backend::jobs::dead_letters;

    let admin = ssr::Admin::authorize().await?;
    let stats = dead_letters::stats(&admin.state.pool, Some(admin.tenant()))
        .await
        .map_err(|error| admin.fail(error.into()))?;
    Ok(ssr::stats(stats))
}

/// Reads one dead letter with its error chain, attempts and sanitized payload. Admins only.
#[server(prefix = "/sfn", endpoint = "dead-letter")]
pub async fn load_dead_letter(id: String) -> Result<DeadLetterDetail, ServerFnError> {
    use backend::http::ApiError;
    use backend::jobs::dead_letters;

    let admin = ssr::Admin::authorize().await?;
    let uuid = ssr::parse_id("id", &id).map_err(|error| admin.fail(error))?;
    let dead_letter = dead_letters::get(&admin.state.pool, Some(admin.tenant()), uuid)
        .await
        .map_err(|error| admin.fail(error.into()))?
        .ok_or_else(|| {
            admin.fail(ApiError::NotFound(format!(
                "dead letter {uuid} not found; it may belong to another tenant or have been \
                 deleted after the retention period"
            )))
        })?;
    Ok(ssr::detail(dead_letter))
}

/// Queues the jobs of the dead letters `ids` again. Admins only.
///
/// The selection is exactly these ids: the backend switches each open dead letter to retried
/// once, so a repeated or concurrent submit of the same ids queues nothing more and reports
/// them as skipped. The form field is `ids[]`, the list syntax of the form decoder.
#[server(prefix = "/sfn", endpoint = "retry-dead-letters")]
pub async fn retry_dead_letters(
    #[server(default)] ids: Vec<String>,
) -> Result<RetryResult, ServerFnError> {
    use backend::http::ApiError;
    use backend::jobs::dead_letters::{self, ActionContext};

    let admin = ssr::Admin::authorize().await?;
    if ids.is_empty() {
        return Err(admin.fail(ApiError::Unprocessable {
            message: "no dead letters selected: tick the box of each dead letter to retry, \
                      then press Retry selected"
                .to_string(),
            field: Some("ids".to_string()),
            value: None,
        }));
    }
    let uuids = ids
        .iter()
        .map(|id| ssr::parse_id("ids", id))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| admin.fail(error))?;

    let client = admin.client().await?;
    let context = ActionContext::for_request(admin.caller.principal(), &client, &admin.correlation);
    let report = dead_letters::retry(&admin.state.pool, Some(admin.tenant()), &uuids, &context)
        .await
        .map_err(|error| admin.fail(error.into()))?;
    tracing::info!(
        retried = report.retried.len(),
        skipped = report.skipped.len(),
        "dead letters retried from the admin page"
    );

    let result = RetryResult {
        retried: report.retried.iter().map(ToString::to_string).collect(),
        skipped: report.skipped.iter().map(ToString::to_string).collect(),
    };
    ssr::redirect_plain_post_with_report(&result);
    Ok(result)
}

/// Closes an open dead letter without running its job again, keeping `reason` in the audit
/// trail. Admins only.
#[server(prefix = "/sfn", endpoint = "discard-dead-letter")]
pub async fn discard_dead_letter(id: String, reason: String) -> Result<(), ServerFnError> {
    use backend::jobs::dead_letters::{self, ActionContext};

    let admin = ssr::Admin::authorize().await?;
    let uuid = ssr::parse_id("id", &id).map_err(|error| admin.fail(error))?;
    let client = admin.client().await?;
    let context = ActionContext::for_request(admin.caller.principal(), &client, &admin.correlation);
    dead_letters::discard(
        &admin.state.pool,
        Some(admin.tenant()),
        uuid,
        &reason,
        &context,
    )
    .await
    .map_err(|error| admin.fail(error.into()))?;
    tracing::info!(dead_letter_id = %uuid, "dead letter discarded from the admin page");
    Ok(())
}

/// Server-side glue: the admin check, filter parsing, and conversion to display values.
#[cfg(feature = "ssr")]
mod ssr {
    use backend::http::{AdminRole, ApiError};
    use backend::jobs::dead_letters::{DeadLetter, DeadLetterSummary, Filter, Stats};
    use backend::jobs::ErrorClass;
    use leptos::prelude::*;
    use serde_json::Value;
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::{
        AttemptRow, DayCount, DeadLetterDetail, DeadLetterRow, DeadLetterStats, KindClassCount,
        ListQuery, RetryResult, ERROR_CLASSES,
    };
    use crate::account::ssr as account;
    use crate::account::ssr::invalid_value as invalid;

    // The browser build cannot read the backend's limits, so the server build checks the copies.
    const _: () = assert!(super::MAX_REASON_CHARS == backend::jobs::dead_letters::MAX_REASON_CHARS);
    const _: () = assert!(super::PAGE_SIZE <= backend::jobs::dead_letters::MAX_PAGE);

    /// Return page of a plain form post whose `Referer` is missing or not a dead-letter page.
    const LIST_PATH: &str = "/admin/dead-letters";

    /// A request by a signed-in admin, with what every dead-letter call needs.
    pub type Admin = account::Call<AdminRole>;

    /// Parses a dead letter id, naming the field and the value when it is not a UUID.
    pub fn parse_id(field: &str, raw: &str) -> Result<Uuid, ApiError> {
        backend::ids::parse_uuid(field, raw).map_err(|_| {
            invalid(
                field,
                raw,
                "a dead letter id is a UUID such as 0190f1c2-7a3b-7c4d-8e5f-0123456789ab; open \
                 dead letters from the list",
            )
        })
    }

    /// Returns the trimmed text of an optional field, or `None` when it is empty.
    fn given(text: &Option<String>) -> Option<&str> {
        text.as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
    }

    /// Parses the page's filters into the backend's, naming the first invalid field and value.
    pub fn filter(query: &ListQuery) -> Result<Filter, ApiError> {
        let class = given(&query.class)
            .map(|text| {
                ErrorClass::parse(text).ok_or_else(|| {
                    invalid(
                        "class",
                        text,
                        &format!("choose one of {}", ERROR_CLASSES.join(", ")),
                    )
                })
            })
            .transpose()?;
        let critical = match given(&query.critical) {
            None | Some("any") => None,
            Some("yes") => Some(true),
            Some("no") => Some(false),
            Some(other) => return Err(invalid("critical", other, "choose any, yes or no")),
        };
        let status = match given(&query.status) {
            None => None,
            Some(status @ ("open" | "retried" | "discarded" | "all")) => Some(status.to_string()),
            Some(other) => {
                return Err(invalid(
                    "status",
                    other,
                    "choose open, retried, discarded or all",
                ))
            }
        };
        let from = parse_day("from", given(&query.from))?;
        let to = parse_day("to", given(&query.to))?;
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(invalid(
                    "from",
                    &from.to_string(),
                    &format!("the first day is after the last day ({to}); swap the two dates"),
                ));
            }
        }
        let cursor = given(&query.cursor)
            .map(|text| parse_id("cursor", text))
            .transpose()?;

        Ok(Filter {
            kind: given(&query.kind).map(str::to_string),
            class,
            critical,
            status,
            from,
            to,
            search: given(&query.q).map(str::to_string),
            cursor,
            limit: Some(super::PAGE_SIZE),
        })
    }

    fn parse_day(field: &str, text: Option<&str>) -> Result<Option<time::Date>, ApiError> {
        let Some(text) = text else {
            return Ok(None);
        };
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(text, format)
            .map(Some)
            .map_err(|_| invalid(field, text, "write dates as YYYY-MM-DD, e.g. 2026-12-04"))
    }

    /// Formats a time as `YYYY-MM-DD HH:MM:SS UTC`.
    fn format_time(at: OffsetDateTime) -> String {
        let format =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
        at.to_offset(time::UtcOffset::UTC)
            .format(format)
            .unwrap_or_else(|_| at.to_string())
    }

    /// Formats an RFC 3339 time from the attempt history; other text is shown as it is.
    fn format_stored_time(value: &Value) -> String {
        match value.as_str() {
            Some(text) => OffsetDateTime::parse(text, &Rfc3339)
                .map(format_time)
                .unwrap_or_else(|_| text.to_string()),
            None => String::new(),
        }
    }

    /// Describes how long ago `at` was, in the largest whole unit.
    fn age(at: OffsetDateTime) -> String {
        let seconds = (OffsetDateTime::now_utc() - at).whole_seconds().max(0);
        match seconds {
            0..60 => format!("{seconds} s ago"),
            60..3_600 => format!("{} min ago", seconds / 60),
            3_600..86_400 => format!("{} h ago", seconds / 3_600),
            _ => format!("{} d ago", seconds / 86_400),
        }
    }

    /// Converts a list entry to a display row.
    pub fn row(summary: DeadLetterSummary) -> DeadLetterRow {
        DeadLetterRow {
            id: summary.id.to_string(),
            kind: summary.kind,
            class: summary.error_class.as_str().to_string(),
            error: summary.error,
            attempts: summary.attempt_count,
            critical: summary.critical,
            status: summary.status,
            failed_at: format_time(summary.failed_at),
            age: age(summary.failed_at),
        }
    }

    /// Converts the backend's statistics for the page.
    pub fn stats(stats: Stats) -> DeadLetterStats {
        DeadLetterStats {
            open: stats.open,
            open_critical: stats.open_critical,
            by_kind_class: stats
                .by_kind_class
                .into_iter()
                .map(|group| KindClassCount {
                    kind: group.kind,
                    class: group.error_class.as_str().to_string(),
                    count: group.count,
                })
                .collect(),
            last_7_days: stats
                .last_7_days
                .into_iter()
                .map(|day| DayCount {
                    day: day.day,
                    count: day.count,
                })
                .collect(),
        }
    }

    /// Converts a dead letter for the detail page.
    pub fn detail(dead_letter: DeadLetter) -> DeadLetterDetail {
        let resolution = dead_letter.resolved_at.map(|at| {
            let by = dead_letter
                .resolved_by
                .as_deref()
                .unwrap_or("an operator at the command line");
            format!(
                "{} by {by} at {}",
                dead_letter.summary.status,
                format_time(at)
            )
        });
        let job_id = dead_letter.summary.job_id.to_string();
        let attempts = dead_letter
            .attempts
            .as_array()
            .map(|entries| entries.iter().map(attempt_row).collect())
            .unwrap_or_default();
        DeadLetterDetail {
            row: row(dead_letter.summary),
            job_id,
            run: dead_letter.run,
            job_status: dead_letter.job_status,
            correlation_id: dead_letter.correlation_id,
            error_chain: dead_letter.error_chain,
            attempts,
            // `{:#}` is serde_json's indented form.
            payload: format!("{:#}", dead_letter.payload),
            resolution,
            discard_reason: dead_letter.discard_reason,
        }
    }

    /// Converts one entry of the attempt history, written by the job ledger at each failure.
    fn attempt_row(entry: &Value) -> AttemptRow {
        let text = |key: &str| match &entry[key] {
            Value::Null => String::new(),
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let delay = entry["delay_ms"]
            .as_u64()
            .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
            .unwrap_or_default();
        AttemptRow {
            run: text("run"),
            attempt: text("attempt"),
            started: format_stored_time(&entry["started_at"]),
            finished: format_stored_time(&entry["finished_at"]),
            class: text("class"),
            error: text("error"),
            outcome: text("outcome"),
            delay,
        }
    }

    /// After a plain form post (no JavaScript), sends the browser back to the dead-letter page
    /// it came from with the retry counts in the query, because such a page cannot read the
    /// server function's return value. Calls made by the hydrated page are left alone.
    pub fn redirect_plain_post_with_report(result: &RetryResult) {
        let Some(parts) = use_context::<http::request::Parts>() else {
            return;
        };
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|value: &http::HeaderValue| value.to_str().ok())
        };
        let plain_post =
            header(http::header::ACCEPT).is_some_and(|accept| accept.contains("text/html"));
        if !plain_post {
            return;
        }
        let back = header(http::header::REFERER)
            .and_then(|referer| referer.parse::<http::Uri>().ok())
            .and_then(|uri| uri.path_and_query().cloned())
            .filter(|target| target.path().starts_with(LIST_PATH));
        let (path, query) = match &back {
            Some(target) => (target.path(), target.query().unwrap_or("")),
            None => (LIST_PATH, ""),
        };
        leptos_axum::redirect(&report_target(path, query, result));
    }

    /// Builds `path?query` with the retry counts replacing earlier counts and server function
    /// error parameters.
    pub fn report_target(path: &str, query: &str, result: &RetryResult) -> String {
        let mut pairs: Vec<String> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or("");
                !matches!(key, "retried" | "skipped" | "__path" | "__err")
            })
            .map(str::to_string)
            .collect();
        pairs.push(format!("retried={}", result.retried.len()));
        pairs.push(format!("skipped={}", result.skipped.len()));
        format!("{path}?{}", pairs.join("&"))
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    #[test]
    fn error_classes_match_backend() {
        let backend: Vec<&str> = backend::jobs::ErrorClass::ALL
            .iter()
            .map(|class| class.as_str())
            .collect();
        assert_eq!(backend, ERROR_CLASSES);
    }

    #[test]
    fn filter_names_invalid_values() {
        let cases = [
            (
                ListQuery {
                    class: Some("flaky".into()),
                    ..ListQuery::default()
                },
                "class \"flaky\"",
            ),
            (
                ListQuery {
                    critical: Some("maybe".into()),
                    ..ListQuery::default()
                },
                "critical \"maybe\"",
            ),
            (
                ListQuery {
                    status: Some("gone".into()),
                    ..ListQuery::default()
                },
                "status \"gone\"",
            ),
            (
                ListQuery {
                    from: Some("4 Dec".into()),
                    ..ListQuery::default()
                },
                "from \"4 Dec\"",
            ),
            (
                ListQuery {
                    cursor: Some("abc".into()),
                    ..ListQuery::default()
                },
                "cursor \"abc\"",
            ),
            (
                ListQuery {
                    from: Some("2026-12-05".into()),
                    to: Some("2026-12-01".into()),
                    ..ListQuery::default()
                },
                "swap the two dates",
            ),
        ];
        for (query, expected) in cases {
            let error = ssr::filter(&query).expect_err("the filter is invalid");
            let message = error.to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn filter_reads_valid_values() {
        let query = ListQuery {
            kind: Some(" demo.fail ".into()),
            class: Some("network".into()),
            critical: Some("yes".into()),
            status: Some("all".into()),
            from: Some("2026-12-01".into()),
            to: Some("2026-12-04".into()),
            q: Some("".into()),
            cursor: None,
        };
        let filter = ssr::filter(&query).expect("the filter is valid");
        assert_eq!(filter.kind.as_deref(), Some("demo.fail"));
        assert_eq!(filter.class, Some(backend::jobs::ErrorClass::Network));
        assert_eq!(filter.critical, Some(true));
        assert_eq!(filter.status.as_deref(), Some("all"));
        assert_eq!(filter.search, None);
        assert_eq!(filter.limit, Some(PAGE_SIZE));
    }

    #[test]
    fn report_target_replaces_old_counts() {
        let result = RetryResult {
            retried: vec!["a".into(), "b".into()],
            skipped: vec!["c".into()],
        };
        let target = ssr::report_target(
            "/admin/dead-letters",
            "status=all&retried=9&skipped=9&__path=x&__err=y",
            &result,
        );
        assert_eq!(target, "/admin/dead-letters?status=all&retried=2&skipped=1");
    }
}
