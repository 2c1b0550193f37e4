//! The Audit page for admins: the hash chain's verification and the newest entries.
//!
//! The chain is verified when the page loads. "Verify chain" is an `ActionForm`, so without
//! JavaScript it posts, returns to this page and verifies again on the reload.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::change_parts::load_error;
use super::require_role;
use crate::changes::{
    list_audit, verify_audit, AuditRow, AuditVerification, VerifyAudit, AUDIT_LIMIT,
};

/// Shows whether the tenant's audit trail is intact and lists its newest entries.
#[component]
pub fn AuditPage() -> impl IntoView {
    view! {
        <Title text="Audit · Siteline" />
        {require_role("admin", view! { <AuditTrail /> })}
    }
}

#[component]
fn AuditTrail() -> impl IntoView {
    let verify = ServerAction::<VerifyAudit>::new();
    let verification = Resource::new(|| (), |_| verify_audit());
    // Every finished verify reloads the entries, because a verify is often a reaction to new rows.
    let entries = Resource::new(move || verify.version().get(), |_| list_audit());
    let verifying = verify.pending();

    view! {
        <h1>"Audit"</h1>
        <p class="cs-lede">
            "Who did what, newest first. Each row's hash covers the row before it, so an edited or removed row breaks the chain."
        </p>
        <div class="audit-verify" aria-live="polite">
            {move || match verify.value().get() {
                Some(Ok(result)) => verification_banner(result).into_any(),
                Some(Err(error)) => load_error("The chain could not be verified", error, "audit-verify-error"),
                None => view! {
                    <Transition fallback=|| view! { <p class="page-status">"Verifying the chain…"</p> }>
                        {move || Suspend::new(async move {
                            match verification.await {
                                Ok(result) => verification_banner(result).into_any(),
                                Err(error) => load_error("The chain could not be verified", error, "audit-verify-error"),
                            }
                        })}
                    </Transition>
                }
                .into_any(),
            }}
        </div>
        <ActionForm action=verify attr:class="audit-verify-form">
            <button type="submit" class="button secondary" data-testid="verify-button" disabled=move || verifying.get()>
                {move || if verifying.get() { "Verifying…" } else { "Verify chain" }}
            </button>
        </ActionForm>
        <Transition fallback=|| view! { <p class="page-status">"Loading the audit trail…"</p> }>
            {move || Suspend::new(async move {
                match entries.await {
                    Ok(rows) if rows.is_empty() => view! {
                        <section class="empty-state" data-testid="audit-empty">
                            <h2>"No audit entries yet"</h2>
                            <p>"Sign-ins, change sets and admin actions are recorded here as they happen."</p>
                            <a class="button" href="/admin/audit">"Check again"</a>
                        </section>
                    }
                    .into_any(),
                    Ok(rows) => view! { <AuditTable rows /> }.into_any(),
                    Err(error) => load_error("The audit trail could not be loaded", error, "audit-error"),
                }
            })}
        </Transition>
    }
}

/// Says whether the chain is intact, or names the first broken row and why.
fn verification_banner(result: AuditVerification) -> impl IntoView {
    if result.intact {
        let text = format!("Chain intact: all {} rows match their hashes.", result.rows);
        return view! {
            <p class="audit-banner audit-intact" role="status" data-testid="audit-verification">{text}</p>
        }
        .into_any();
    }
    let row = result
        .first_broken_seq
        .map(|seq| seq.to_string())
        .unwrap_or_else(|| "an unknown row".to_string());
    let reason = result
        .reason
        .unwrap_or_else(|| "no reason given".to_string());
    view! {
        <div class="error-panel audit-banner" role="alert" data-testid="audit-verification">
            <h2>{format!("Chain broken at row {row}: {reason}")}</h2>
            <p>
                {format!("{} rows checked. ", result.rows)}
                "Rows from this one on cannot be trusted. Compare them with a database backup and report the break to your security contact."
            </p>
        </div>
    }
    .into_any()
}

/// Renders one entry per `tbody`. The first row contains seq, time, actor and action, and a
/// second row the subject, client address and correlation id, whose UUIDs would crowd one row.
#[component]
fn AuditTable(rows: Vec<AuditRow>) -> impl IntoView {
    let count = format!("The newest {} entries (at most {AUDIT_LIMIT}).", rows.len());
    view! {
        <p class="cs-muted">{count}</p>
        <div class="table-scroll" role="region" aria-label="Audit trail" tabindex="0">
            <table class="table cs-table audit-table" data-testid="audit-table">
                <thead>
                    <tr>
                        <th scope="col" class="num">"Seq"</th>
                        <th scope="col">"Time"</th>
                        <th scope="col">"Actor"</th>
                        <th scope="col">"Action"</th>
                    </tr>
                </thead>
                {rows.into_iter().map(|row| view! { <AuditEntry row /> }).collect_view()}
            </table>
        </div>
    }
}

#[component]
fn AuditEntry(row: AuditRow) -> impl IntoView {
    // Change sets have a page, so their rows link to it.
    let subject = if row.subject_type == "change_set" {
        let href = format!("/changes/{}", row.subject_id);
        view! { "change set "<A href=href attr:class="mono">{row.subject_id}</A> }.into_any()
    } else {
        let kind = row.subject_type.replace('_', " ");
        view! { {kind}" "<span class="mono">{row.subject_id}</span> }.into_any()
    };
    let ip = if row.ip.is_empty() {
        "none".to_string()
    } else {
        row.ip
    };
    let correlation_id = if row.correlation_id.is_empty() {
        "none".to_string()
    } else {
        row.correlation_id
    };

    view! {
        <tbody class="audit-entry" data-testid="audit-row">
            <tr>
                <td class="num" rowspan="2">{row.seq}</td>
                <td class="cs-nowrap">{row.at}</td>
                <td class="cs-wrap">{row.actor}</td>
                <td class="mono cs-wrap">{row.action}</td>
            </tr>
            <tr class="audit-meta">
                <td colspan="3">
                    <span class="audit-field"><span class="audit-label">"Subject "</span>{subject}</span>
                    <span class="audit-field"><span class="audit-label">"IP "</span><span class="mono">{ip}</span></span>
                    <span class="audit-field">
                        <span class="audit-label">"Correlation id "</span>
                        <span class="mono">{correlation_id}</span>
                    </span>
                </td>
            </tr>
        </tbody>
    }
}
