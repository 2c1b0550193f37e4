//! The landing page for every signed-in user.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::account::CurrentUser;

/// Greets the user and lists what their roles let them do.
#[component]
pub fn HomePage() -> impl IntoView {
    let user = use_context::<CurrentUser>();
    let roles = user
        .as_ref()
        .map(|user| user.roles.join(", "))
        .unwrap_or_default();
    let tenant = user.map(|user| user.tenant_name).unwrap_or_default();

    view! {
        <Title text="Home · Siteline" />
        <h1>"Welcome"</h1>
        <p>{format!("You are signed in to {tenant} with the roles: {roles}.")}</p>
        <p>"Use the menu to open the pages your roles allow."</p>
    }
}
