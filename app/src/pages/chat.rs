//! The Chat page for facility managers.

use leptos::prelude::*;
use leptos_meta::Title;

use super::require_role;

/// Where a manager will set up a site by conversation. For now it has one interactive
/// control, which proves the page hydrated: its click updates the page without a reload.
#[component]
pub fn ChatPage() -> impl IntoView {
    let (clicks, set_clicks) = signal(0u32);
    let status = move || match clicks.get() {
        0 => "Not checked yet".to_string(),
        1 => "Interactive: clicked 1 time".to_string(),
        n => format!("Interactive: clicked {n} times"),
    };

    let content = view! {
        <h1>"Chat"</h1>
        <section class="empty-state">
            <h2>"No conversation yet"</h2>
            <p>"Conversations about a site will appear here. Check that this page responds:"</p>
            <button
                type="button"
                class="button"
                data-testid="hydration-check"
                on:click=move |_| set_clicks.update(|n| *n += 1)
            >
                "Check interactivity"
            </button>
            <p data-testid="hydration-status" aria-live="polite">{status}</p>
        </section>
    };

    view! {
        <Title text="Chat · Siteline" />
        {require_role("manager", content)}
    }
}
