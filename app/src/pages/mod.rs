//! One module per page, each reading top to bottom as the user sees it.

mod approvals;
mod audit;
mod change_parts;
mod change_set;
mod chat;
mod dead_letters;
mod home;
mod knowledge;
mod login;
mod my_changes;
mod not_found;
mod providers;
mod site;
mod users;

pub use approvals::ApprovalsPage;
pub use audit::AuditPage;
pub use change_set::ChangeSetPage;
pub use chat::ChatPage;
pub use dead_letters::{DeadLetterPage, DeadLettersPage};
pub use home::HomePage;
pub use knowledge::{KnowledgeDocumentPage, KnowledgePage, KnowledgeReviewPage};
pub use login::LoginPage;
pub use my_changes::MyChangesPage;
pub use not_found::NotFoundPage;
pub use providers::ProvidersPage;
pub use site::{SitePage, SitesPage};
pub use users::UsersPage;

use leptos::prelude::*;

use crate::account::CurrentUser;

/// Shows `content` when the signed-in user has `role`, otherwise explains who can open it.
fn require_role(role: &'static str, content: impl IntoView + 'static) -> impl IntoView {
    let user = use_context::<CurrentUser>();
    if user.as_ref().is_some_and(|user| user.has(role)) {
        content.into_any()
    } else {
        view! {
            <div class="error-panel" role="alert">
                <h1>"Not available to your account"</h1>
                <p>{format!("This page is for the {role} role. Ask an admin of your tenant to grant it.")}</p>
            </div>
        }
        .into_any()
    }
}
