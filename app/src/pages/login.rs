//! The sign-in page. A plain form that works before the page is interactive.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::account::Login;

/// Email and password form; errors (wrong credentials, throttling) appear above the button.
#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let error = move || {
        login
            .value()
            .get()
            .and_then(Result::err)
            .map(|error| match error {
                ServerFnError::ServerError(message) => message,
                other => other.to_string(),
            })
    };

    view! {
        <Title text="Sign in · Siteline" />
        <main class="login">
            <div class="card">
                <h1>"Sign in to Siteline"</h1>
                <ActionForm action=login attr:class="form">
                    <label for="email">"Email"</label>
                    <input id="email" name="email" type="email" autocomplete="username" required />
                    <label for="password">"Password"</label>
                    <input
                        id="password"
                        name="password"
                        type="password"
                        autocomplete="current-password"
                        required
                    />
                    <div aria-live="polite">
                        {move || error().map(|message| view! { <p class="field-error" role="alert">{message}</p> })}
                    </div>
                    <button type="submit" class="button">
                        {move || if login.pending().get() { "Signing in…" } else { "Log in" }}
                    </button>
                </ActionForm>
            </div>
        </main>
    }
}
