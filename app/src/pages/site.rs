//! The Site pages for every role: a form that opens a site by code, and one site's
//! configuration by kind.
//!
//! No list of sites exists yet, so `/sites` shows a code form. Its GET form sends `?code=`, and
//! the page redirects to `/sites/<CODE>`, which also works without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Form, Redirect, A};
use leptos_router::hooks::{use_params_map, use_query_map};

use super::change_parts::load_error;
use crate::changes::{is_site_code, load_site, Fact, RowTable, SiteView};

/// Path of the form that opens a site.
const SITES_PATH: &str = "/sites";

/// Asks for a site code and opens that site.
#[component]
pub fn SitesPage() -> impl IntoView {
    let query = use_query_map();
    let typed = move || {
        query
            .with(|query| query.get("code"))
            .map(|code| code.trim().to_uppercase())
    };

    view! {
        <Title text="Sites · Siteline" />
        <h1>"Sites"</h1>
        {move || match typed() {
            Some(code) if is_site_code(&code) => {
                view! { <Redirect path=format!("{SITES_PATH}/{code}") /> }.into_any()
            }
            other => view! { <OpenSiteForm typed=other /> }.into_any(),
        }}
    }
}

/// Renders the code form. `typed` is the code of an earlier submit that is not a valid code.
#[component]
fn OpenSiteForm(typed: Option<String>) -> impl IntoView {
    let error = typed.as_ref().map(|code| {
        if code.is_empty() {
            "Enter a site code, e.g. WH-01.".to_string()
        } else {
            format!(
                "Site code \"{code}\" is invalid: a site code has 1-32 characters of A-Z, 0-9, \
                 '_' and '-' and starts with a letter or digit, e.g. WH-01."
            )
        }
    });

    view! {
        <p class="cs-lede">"Open a site's configuration by its code."</p>
        <Form method="get" action=SITES_PATH attr:class="cs-filter site-open">
            <label for="site-code">"Site code"</label>
            <input
                id="site-code"
                name="code"
                type="text"
                required
                maxlength="32"
                placeholder="e.g. WH-01"
                value=typed.unwrap_or_default()
                aria-describedby="site-code-error"
                data-testid="site-code-input"
            />
            <button type="submit" class="button" data-testid="open-site">"Open site"</button>
        </Form>
        <div id="site-code-error" aria-live="polite">
            {error.map(|text| view! { <p class="field-error" data-testid="site-code-error">{text}</p> })}
        </div>
    }
}

/// Shows one site's configuration, or a not-found state when the tenant has no such site.
#[component]
pub fn SitePage() -> impl IntoView {
    let params = use_params_map();
    let code = Memo::new(move |_| params.with(|params| params.get("code").unwrap_or_default()));
    let site = Resource::new(move || code.get(), load_site);

    view! {
        <Title text="Site · Siteline" />
        <p class="cs-back"><A href=SITES_PATH>"← Open another site"</A></p>
        <Transition fallback=|| view! { <p class="page-status">"Loading the site…"</p> }>
            {move || Suspend::new(async move {
                match site.await {
                    Ok(Some(site)) => view! { <SiteBody site /> }.into_any(),
                    Ok(None) => not_found(code.get_untracked()).into_any(),
                    Err(error) => load_error("The site could not be loaded", error, "site-error"),
                }
            })}
        </Transition>
    }
}

/// Renders the not-found state and, on the server, sets the response status to 404.
fn not_found(code: String) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }

    view! {
        <section class="empty-state" data-testid="site-not-found">
            <h1>"Site not found"</h1>
            <p>
                {format!("Your tenant has no site with code {code}. ")}
                "Check the code, or create the site with a change set in Chat."
            </p>
            <a class="button" href=SITES_PATH>"Open another site"</a>
        </section>
    }
}

// TODO: name the change set that last touched each row once the backend returns it with the
// site configuration.
#[component]
fn SiteBody(site: SiteView) -> impl IntoView {
    let security = match site.security {
        Some(facts) => view! { <FactList facts test_id="site-security" /> }.into_any(),
        None => view! {
            <p class="cs-muted" data-testid="site-security">
                "No security settings yet. Add them with a change set."
            </p>
        }
        .into_any(),
    };

    view! {
        <h1 data-testid="site-name">{site.name}</h1>
        <p class="cs-muted">"Site code "<span class="mono" data-testid="site-code">{site.code}</span></p>
        <div class="site-grid">
            <section class="cs-facts" aria-labelledby="site-facts-heading">
                <h2 id="site-facts-heading">"Facts"</h2>
                <FactList facts=site.facts test_id="site-facts" />
            </section>
            <section class="cs-facts" aria-labelledby="site-hours-heading">
                <h2 id="site-hours-heading">"Opening hours"</h2>
                <FactList facts=site.hours test_id="site-hours" />
            </section>
            <section class="cs-facts" aria-labelledby="site-security-heading">
                <h2 id="site-security-heading">"Security settings"</h2>
                {security}
            </section>
        </div>
        <KindTable title="Zones" table=site.zones test_id="site-zones" />
        <KindTable title="Assets" table=site.assets test_id="site-assets" />
        <KindTable title="Checkpoints" table=site.checkpoints test_id="site-checkpoints" />
        <KindTable title="Shifts" table=site.shifts test_id="site-shifts" />
        <KindTable
            title="Maintenance schedules"
            table=site.maintenance_schedules
            test_id="site-maintenance"
        />
    }
}

#[component]
fn FactList(facts: Vec<Fact>, test_id: &'static str) -> impl IntoView {
    view! {
        <dl class="site-facts" data-testid=test_id>
            {facts
                .into_iter()
                .map(|fact| view! { <div><dt>{fact.label}</dt><dd>{fact.value}</dd></div> })
                .collect_view()}
        </dl>
    }
}

/// Renders the rows of one kind, or a sentence when the site has none.
#[component]
fn KindTable(title: &'static str, table: RowTable, test_id: &'static str) -> impl IntoView {
    let body = if table.rows.is_empty() {
        let text = format!("No {} yet.", title.to_lowercase());
        view! { <p class="cs-muted">{text}</p> }.into_any()
    } else {
        let headings = table
            .columns
            .into_iter()
            .map(|column| view! { <th scope="col">{column}</th> })
            .collect_view();
        let rows = table
            .rows
            .into_iter()
            .map(|cells| {
                let cells = cells
                    .into_iter()
                    .map(|cell| view! { <td class="cs-wrap">{cell}</td> })
                    .collect_view();
                view! { <tr>{cells}</tr> }
            })
            .collect_view();
        view! {
            <div class="table-scroll" role="region" aria-label=title tabindex="0">
                <table class="table cs-table">
                    <thead><tr>{headings}</tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        }
        .into_any()
    };

    view! {
        <section class="cs-section" data-testid=test_id>
            <h2>{title}</h2>
            {body}
        </section>
    }
}
