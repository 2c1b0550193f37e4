//! Operator commands on jobs and dead letters: `server dead-letters ...` and
//! `server jobs demo-fail`.

use backend::audit::Actor;
use backend::jobs::dead_letters::{self, ActionContext, ActionError, Filter};
use backend::jobs::demo::{DemoArgs, DEMO_KIND};
use backend::jobs::{ErrorClass, NewJob};
use sqlx::PgPool;
use uuid::Uuid;

/// Operators act for no user; the audit trail names them as the command line.
fn operator() -> ActionContext {
    ActionContext {
        actor: Actor::Operator,
        ip: None,
        user_agent: None,
        correlation_id: Some(format!("cli-{}", Uuid::now_v7())),
    }
}

fn action_error(error: ActionError) -> anyhow::Error {
    anyhow::anyhow!(error.to_string())
}

/// Parses a dead letter id given on the command line.
pub fn parse_id(text: &str) -> anyhow::Result<Uuid> {
    text.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "'{text}' is not a dead letter id; ids are UUIDs as printed by `server dead-letters list`"
        )
    })
}

/// Parses an error class given on the command line.
pub fn parse_class(text: &str) -> anyhow::Result<ErrorClass> {
    ErrorClass::parse(text).ok_or_else(|| {
        let names: Vec<&str> = ErrorClass::ALL.iter().map(|class| class.as_str()).collect();
        anyhow::anyhow!(
            "unknown error class '{text}'; use one of {}",
            names.join(", ")
        )
    })
}

/// Prints dead letters matching `filter`, one per line, newest first.
pub async fn list(pool: &PgPool, filter: &Filter) -> anyhow::Result<()> {
    let rows = dead_letters::list(pool, None, filter).await?;
    if rows.is_empty() {
        println!("no dead letters match");
        return Ok(());
    }
    for row in rows {
        println!(
            "{}  {}  {:<24} {:<14} {:<9} attempts={} {}{}",
            row.id,
            row.failed_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            row.kind,
            row.error_class,
            row.status,
            row.attempt_count,
            if row.critical { "CRITICAL " } else { "" },
            row.error
        );
    }
    Ok(())
}

/// Prints one dead letter as pretty JSON.
pub async fn show(pool: &PgPool, id: Uuid) -> anyhow::Result<()> {
    let dead_letter = dead_letters::get(pool, None, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("dead letter {id} not found"))?;
    println!("{}", serde_json::to_string_pretty(&dead_letter)?);
    Ok(())
}

/// Queues the jobs of the given dead letters again and prints what happened to each.
pub async fn retry(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<()> {
    let report = dead_letters::retry(pool, None, ids, &operator())
        .await
        .map_err(action_error)?;
    for id in &report.retried {
        println!("retried {id}");
    }
    for id in &report.skipped {
        println!("skipped {id}: not open (already retried or discarded) or unknown");
    }
    Ok(())
}

/// Discards a dead letter with a reason.
pub async fn discard(pool: &PgPool, id: Uuid, reason: &str) -> anyhow::Result<()> {
    dead_letters::discard(pool, None, id, reason, &operator())
        .await
        .map_err(action_error)?;
    println!("discarded {id}");
    Ok(())
}

/// Queues a `demo.fail` job for a tenant and prints its id. Workers run it only when started
/// with `DEMO_JOBS=true`; otherwise it lands in dead letters as a kind they do not know.
pub async fn queue_demo(pool: &PgPool, tenant_slug: &str, args: DemoArgs) -> anyhow::Result<()> {
    let tenant_id: Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(tenant_slug)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "tenant '{tenant_slug}' not found; create it with `server admin create-tenant`"
            )
        })?;
    let job = NewJob::new(
        DEMO_KIND,
        serde_json::to_value(&args)?,
        format!("cli-{}", Uuid::now_v7()),
    )
    .tenant(tenant_id);
    let enqueued = backend::jobs::enqueue_now(pool, job).await?;
    println!("queued {DEMO_KIND} job {}", enqueued.job_id);
    Ok(())
}
