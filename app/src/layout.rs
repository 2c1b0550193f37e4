//! The signed-in layout: top bar, navigation by role, and the page.

use leptos::prelude::*;
use leptos_router::components::{Redirect, A};

use crate::account::{signed_in_user, CurrentUser, Logout};

/// One navigation entry and the roles that see it.
struct NavItem {
    href: &'static str,
    label: &'static str,
    roles: &'static [&'static str],
}

/// Pages in navigation order; an entry shows only to users holding one of its roles.
const NAV: &[NavItem] = &[
    NavItem {
        href: "/",
        label: "Home",
        roles: &["manager", "approver", "admin"],
    },
    NavItem {
        href: "/chat",
        label: "Chat",
        roles: &["manager"],
    },
    NavItem {
        href: "/approvals",
        label: "Approvals",
        roles: &["approver"],
    },
    NavItem {
        href: "/changes",
        label: "My changes",
        roles: &["manager"],
    },
    NavItem {
        href: "/sites",
        label: "Sites",
        roles: &["manager", "approver", "admin"],
    },
    NavItem {
        href: "/knowledge",
        label: "Knowledge",
        roles: &["manager", "approver", "admin"],
    },
    NavItem {
        href: "/users",
        label: "Users",
        roles: &["admin"],
    },
    NavItem {
        href: "/admin/dead-letters",
        label: "Dead letters",
        roles: &["admin"],
    },
    NavItem {
        href: "/admin/providers",
        label: "Providers",
        roles: &["admin"],
    },
    NavItem {
        href: "/admin/audit",
        label: "Audit",
        roles: &["admin"],
    },
];

/// Wraps a signed-in page; visitors are sent to the sign-in page.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let user = Resource::new(|| (), |_| signed_in_user());

    view! {
        <Suspense fallback=|| view! { <p class="page-status">"Loading your workspace…"</p> }>
            // A bare Suspend, not `move || Suspend::new(..)`: server rendering calls a view
            // closure twice (once to find resources, once for HTML), which would build the page
            // below twice and leave the first copy's resources without their owner. The user
            // never changes while a page is open, so nothing here needs to react.
            {Suspend::new(async move {
                match user.await {
                    Ok(Some(user)) => view! { <SignedIn user children /> }.into_any(),
                    Ok(None) => view! { <Redirect path="/login" /> }.into_any(),
                    Err(error) => view! {
                        <main class="page">
                            <div class="error-panel" role="alert">
                                <h1>"Siteline could not load your account"</h1>
                                <p>{error.to_string()}</p>
                                <p>"Reload the page; if it fails again, sign in anew."</p>
                            </div>
                        </main>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn SignedIn(user: CurrentUser, children: Children) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    let nav: Vec<_> = NAV
        .iter()
        .filter(|item| item.roles.iter().any(|role| user.has(role)))
        .map(|item| view! { <li><A href=item.href>{item.label}</A></li> })
        .collect();
    let email = user.email.clone();
    let tenant = user.tenant_name.clone();
    provide_context(user);

    view! {
        <header class="topbar">
            <a class="brand" href="/">"Siteline"</a>
            <span class="tenant">{tenant}</span>
            <span class="spacer"></span>
            <span class="user">{email}</span>
            <ActionForm action=logout attr:class="logout">
                <button type="submit" class="button secondary">"Log out"</button>
            </ActionForm>
        </header>
        <div class="frame">
            <details class="nav-fold" open>
                <summary>"Menu"</summary>
                <nav aria-label="Main">
                    <ul>{nav}</ul>
                </nav>
            </details>
            <main class="page">{children()}</main>
        </div>
    }
}
