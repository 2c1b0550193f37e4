//! The Users page for admins.

use leptos::prelude::*;
use leptos_meta::Title;

use super::require_role;
use crate::account::list_users;

/// Lists the accounts of the admin's tenant.
#[component]
pub fn UsersPage() -> impl IntoView {
    let users = Resource::new(|| (), |_| list_users());

    let content = view! {
        <h1>"Users"</h1>
        <Suspense fallback=|| view! { <p class="page-status">"Loading users…"</p> }>
            {move || Suspend::new(async move {
                match users.await {
                    Ok(rows) if rows.is_empty() => view! {
                        <p class="empty-state">"No users yet. Create one with `server admin create-user`."</p>
                    }
                    .into_any(),
                    Ok(rows) => view! {
                        <table class="table">
                            <thead><tr><th scope="col">"Email"</th><th scope="col">"Roles"</th><th scope="col">"Id"</th></tr></thead>
                            <tbody>
                                {rows.into_iter().map(|row| view! {
                                    <tr><td>{row.email}</td><td>{row.roles.join(", ")}</td><td class="mono">{row.id}</td></tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any(),
                    Err(error) => view! {
                        <div class="error-panel" role="alert"><p>{error.to_string()}</p></div>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    };

    view! {
        <Title text="Users · Siteline" />
        {require_role("admin", content)}
    }
}
