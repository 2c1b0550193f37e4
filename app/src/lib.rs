//! Siteline's user interface: the routes, the pages and the server functions they call.
//!
//! Compiled twice: with `ssr` for the server (server functions run there and reach the backend
//! through the `AppState` in Leptos context) and with `hydrate` for the browser.

// The hydrate build nests the view types of the larger pages deeper than rustc's default limit
// of 128 when it computes their layout. `--cfg erase_components` would avoid that, but the
// server and the wasm must agree on it, and neither uses it.
#![recursion_limit = "256"]

pub mod account;
pub mod changes;
pub mod chat;
pub mod dead_letters;
pub mod knowledge;
mod layout;
mod pages;
pub mod providers;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

use crate::layout::Layout;
use crate::pages::{
    ApprovalsPage, AuditPage, ChangeSetPage, ChatPage, DeadLetterPage, DeadLettersPage, HomePage,
    KnowledgeDocumentPage, KnowledgePage, KnowledgeReviewPage, LoginPage, MyChangesPage,
    NotFoundPage, ProvidersPage, SitePage, SitesPage, UsersPage,
};

/// Renders the HTML document around the application, on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// Renders the application: routes and the shared layout.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    #[cfg(feature = "ssr")]
    set_content_security_policy();

    // Effects run only in the browser, after hydration: the attribute shows people and tests
    // that the page is interactive.
    Effect::new(move |_| {
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Stylesheet id="leptos" href="/pkg/siteline.css" />
        <Title text="Siteline" />
        <Router>
            <Routes fallback=NotFoundPage>
                <Route path=path!("/login") view=LoginPage />
                // Signed-in pages render once the account is known, so a visitor gets a real
                // redirect to the sign-in page instead of a streamed shell. Each page is wrapped
                // in the layout directly rather than through a parent route's <Outlet/>: server
                // rendering calls the Outlet's view closure twice, which built every page twice
                // and let the discarded copy's resources race the real ones into the HTML.
                <Route
                    path=path!("/")
                    view=|| view! { <Layout><HomePage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/chat")
                    view=|| view! { <Layout><ChatPage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/users")
                    view=|| view! { <Layout><UsersPage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/knowledge")
                    view=|| view! { <Layout><KnowledgePage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/knowledge/review")
                    view=|| view! { <Layout><KnowledgeReviewPage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/knowledge/documents/:id")
                    view=|| view! { <Layout><KnowledgeDocumentPage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/admin/dead-letters")
                    view=|| view! { <Layout><DeadLettersPage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/admin/dead-letters/:id")
                    view=|| view! { <Layout><DeadLetterPage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/approvals")
                    view=|| view! { <Layout><ApprovalsPage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/changes")
                    view=|| view! { <Layout><MyChangesPage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/changes/:id")
                    view=|| view! { <Layout><ChangeSetPage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/sites")
                    view=|| view! { <Layout><SitesPage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/sites/:code")
                    view=|| view! { <Layout><SitePage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/admin/providers")
                    view=|| view! { <Layout><ProvidersPage /></Layout> }
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/admin/audit")
                    view=|| view! { <Layout><AuditPage /></Layout> }
                    ssr=SsrMode::Async
                />
            </Routes>
        </Router>
    }
}

/// Sets a strict Content-Security-Policy on the page response: scripts only from this origin or
/// carrying this response's nonce (the hydration scripts do), no plugins, no framing, and no
/// images, styles or connections from other hosts.
#[cfg(feature = "ssr")]
fn set_content_security_policy() {
    let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    let nonce = leptos::nonce::use_nonce()
        .map(|nonce| format!(" 'nonce-{}'", &*nonce))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}
