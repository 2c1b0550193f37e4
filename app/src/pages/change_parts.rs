//! Pieces shared by the change-set, site and audit pages: error text, the error state and
//! status badges.

use leptos::prelude::*;

/// Returns the sentence of a server function error.
pub fn error_text(error: ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) => message,
        other => other.to_string(),
    }
}

/// Renders the error state of a page section: what failed, the server's sentence (which names
/// the correlation id for internal errors) and the next step.
pub fn load_error(title: &'static str, error: ServerFnError, test_id: &'static str) -> AnyView {
    view! {
        <div class="error-panel" role="alert" data-testid=test_id>
            <h2>{title}</h2>
            <p>{error_text(error)}</p>
            <p>"Reload the page to try again."</p>
        </div>
    }
    .into_any()
}

/// Renders a change set status as a badge; `overdue` marks a request past its expiry time
/// that no decision or apply has closed yet.
pub fn status_badge(status: String, overdue: bool) -> impl IntoView {
    let class = format!("badge badge-cs-{status}");
    let label = status.replace('_', " ");
    view! {
        <span class=class data-testid="status-badge">{label}</span>
        {overdue.then(|| view! { <span class="badge badge-cs-expired">"past expiry"</span> })}
    }
}

/// Makes the first letter of `text` upper case, for sentences that the backend writes in
/// lower case.
pub fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
