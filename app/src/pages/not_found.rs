//! The page for unknown paths.

use leptos::prelude::*;

/// Says the page does not exist and links home.
#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }

    view! {
        <main class="page">
            <h1>"Page not found"</h1>
            <p>"Check the address, or go back to the "<a href="/">"home page"</a>"."</p>
        </main>
    }
}
