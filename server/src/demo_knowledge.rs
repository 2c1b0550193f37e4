//! The demo's knowledge base: the Markdown guides in `docs/knowledge/`, ingested into the demo
//! tenant and published, so that a new user's first recommendation has something to cite.
//!
//! The demo admin submits each guide, and workers in this process run the pipeline. Then the
//! two demo approvers record the two reviews that publication needs, with a comment that names
//! the seed command as their author. Running it again skips guides that are already there.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backend::accounts::{self, Email, Principal};
use backend::changes::store::Caller;
use backend::http::{ClientMeta, CorrelationId};
use backend::jobs::JobSettings;
use backend::knowledge::review::{self, NewReview, ReviewDecision};
use backend::knowledge::store::{self, NewSource, Submission, Submitter};
use backend::knowledge::Authority;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ops::{cli_error, DEMO_TENANT};

/// How long the pipeline may take for all guides, the model's first load included.
const PIPELINE_LIMIT: Duration = Duration::from_secs(600);

/// A guide waiting for the pipeline or for its reviews.
struct Pending {
    name: String,
    document_id: Uuid,
}

/// Ingests and publishes every `*.md` guide in `dir` except `README.md` into the demo tenant.
pub async fn seed(pool: &PgPool, jobs: JobSettings, dir: &Path) -> anyhow::Result<()> {
    let tenant = accounts::tenant_by_slug(pool, DEMO_TENANT)
        .await
        .map_err(cli_error)?
        .ok_or_else(|| {
            anyhow::anyhow!("the demo tenant is missing: run `server admin seed-demo` first")
        })?;
    let admin = demo_caller(pool, "admin").await?;
    let approvers = [
        demo_caller(pool, "approver").await?,
        demo_caller(pool, "approver2").await?,
    ];

    let mut pending = Vec::new();
    for path in guides(dir)? {
        let name = file_name(&path);
        let bytes = std::fs::read(&path)
            .map_err(|error| anyhow::anyhow!("reading {} failed: {error}", path.display()))?;
        let existing: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT id, status FROM knowledge_documents \
              WHERE tenant_id = $1 AND sha256 = $2 \
                AND status IN ('processing', 'in_review', 'published') \
              ORDER BY created_at DESC LIMIT 1",
        )
        .bind(tenant.id.0)
        .bind(store::sha256_hex(&bytes))
        .fetch_optional(pool)
        .await?;
        match existing {
            Some((_, status)) if status == "published" => {
                println!("knowledge {name:<36} published already");
            }
            Some((document_id, _)) => pending.push(Pending { name, document_id }),
            None => {
                let submission = Submission {
                    source: NewSource::Upload {
                        file_name: name.clone(),
                        bytes,
                    },
                    title: Some(title(&path)?),
                    authority: Authority::High,
                };
                let submitted =
                    store::submit(pool, &jobs.knowledge, &Submitter::User(&admin), submission)
                        .await
                        .map_err(cli_error)?;
                pending.push(Pending {
                    name,
                    document_id: submitted.document_id,
                });
            }
        }
    }
    if pending.is_empty() {
        return Ok(());
    }

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(crate::workers::run(pool.clone(), jobs, async {
        let _ = stopped.await;
    }));
    let waited = wait_for_review(pool, tenant.id.0, &pending).await;
    let _ = stop.send(());
    workers
        .await
        .map_err(|error| anyhow::anyhow!("the seed workers stopped abnormally: {error}"))??;
    waited?;

    for guide in &pending {
        publish(pool, &approvers, guide).await?;
    }
    Ok(())
}

/// Lists the guides in `dir`, sorted by name.
fn guides(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|error| {
        anyhow::anyhow!(
            "the demo knowledge folder {} cannot be read: {error}; pass --dir with the folder \
             of the guides (docs/knowledge in the repository)",
            dir.display()
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .filter(|path| file_name(path) != "README.md")
        .collect();
    paths.sort();
    if paths.is_empty() {
        anyhow::bail!("no Markdown guides in {}", dir.display());
    }
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads a guide's title from its first `# ` line.
fn title(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow::anyhow!("reading {} failed: {error}", path.display()))?;
    text.lines()
        .find_map(|line| line.strip_prefix("# "))
        .map(|title| title.trim().to_string())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} has no `# Title` line; start the guide with one",
                path.display()
            )
        })
}

/// Builds the audit caller of a demo user, `label@demo.siteline.test`.
async fn demo_caller(pool: &PgPool, label: &str) -> anyhow::Result<Caller> {
    let email = Email::parse(&format!("{label}@demo.siteline.test")).map_err(cli_error)?;
    let user_id = accounts::user_id_by_email(pool, &email)
        .await
        .map_err(cli_error)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the demo user {} is missing: run `server admin seed-demo` first",
                email.as_str()
            )
        })?;
    let principal: Principal = accounts::load_principal(pool, user_id)
        .await
        .map_err(cli_error)?
        .ok_or_else(|| anyhow::anyhow!("the demo user {} is disabled", email.as_str()))?;
    let client = ClientMeta {
        ip: "local".to_string(),
        user_agent: "server admin seed-demo-knowledge".to_string(),
    };
    let correlation = CorrelationId(format!("seed-demo-knowledge-{}", Uuid::now_v7()));
    Ok(Caller::new(&principal, &client, &correlation))
}

/// Waits until every guide leaves the pipeline, printing each one's progress as it moves.
async fn wait_for_review(pool: &PgPool, tenant: Uuid, pending: &[Pending]) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut shown: Vec<Option<(String, i16)>> = vec![None; pending.len()];
    loop {
        let mut waiting = 0;
        for (guide, shown) in pending.iter().zip(shown.iter_mut()) {
            let document = store::get(pool, tenant, guide.document_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("document {} vanished", guide.document_id))?;
            let now = Some((document.stage.clone(), document.progress));
            if *shown != now {
                println!(
                    "knowledge {:<36} {} {}%",
                    guide.name, document.stage, document.progress
                );
                *shown = now;
            }
            match document.status.as_str() {
                "processing" => waiting += 1,
                "in_review" | "published" => {}
                other => anyhow::bail!(
                    "{} stopped in the pipeline with status {other}: {}",
                    guide.name,
                    document.error.unwrap_or_default()
                ),
            }
        }
        if waiting == 0 {
            return Ok(());
        }
        if started.elapsed() > PIPELINE_LIMIT {
            anyhow::bail!(
                "{waiting} guide(s) were still in the pipeline after {} s; see the Knowledge page \
                 or `server dead-letters list`",
                PIPELINE_LIMIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Records the two approvals that publish a guide.
async fn publish(pool: &PgPool, approvers: &[Caller; 2], guide: &Pending) -> anyhow::Result<()> {
    let mut status = String::new();
    for (number, approver) in approvers.iter().enumerate() {
        let scores = number == 0;
        let outcome = review::review(
            pool,
            approver,
            guide.document_id,
            &NewReview {
                decision: ReviewDecision::Approve,
                accuracy: scores.then_some(0.9),
                completeness: scores.then_some(0.8),
                relevance: scores.then_some(0.9),
                comment: Some(
                    "Recorded by `server admin seed-demo-knowledge` for the demo guides."
                        .to_string(),
                ),
            },
        )
        .await
        .map_err(cli_error)?;
        status = outcome.status;
    }
    println!("knowledge {:<36} {status}", guide.name);
    Ok(())
}
