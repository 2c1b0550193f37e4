//! The stage jobs of a recommendation run: retrieve -> maker -> checker -> consensus ->
//! persist, one job kind per stage.
//!
//! Every stage is idempotent in the same way: it acts only while the run is `running` at its
//! own stage, stores its output on the run row and queues the next stage in one transaction
//! whose update re-checks the stage. A redelivered job finds the run past its stage and does
//! nothing. A permanent error fails the run and moves the conversation to error. Other errors
//! are recorded on the run and retried by the job system. A run that never finishes is failed
//! by the upkeep once the conversation has been generating for longer than its limit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::consensus::{self, Consensus, ConsensusSettings, Decision};
use super::offline::{self, ExistingConfiguration, MakerSettings};
use super::runs::{stage_job, Citation, StoredChunk};
use super::{
    checker_schema, maker_schema, parse_checker_output, parse_maker_output,
    parse_model_maker_output, CheckerOutput, MakerOutput, RetrievedChunk, CHECKER_SCHEMA_NAME,
    MAKER_SCHEMA_NAME,
};
use crate::conversations::facts::CollectedData;
use crate::conversations::lifecycle::{apply_event, escalate_in, MoveBy};
use crate::conversations::state::Event;
use crate::conversations::{self, ConversationState};
use crate::ids::{ConversationId, TenantId};
use crate::jobs::runner::Registry;
use crate::jobs::{self, ErrorClass, JobContext, JobError, JobHandler};
use crate::knowledge::embed::Embedder;
use crate::knowledge::search::{search, DEFAULT_K};
use crate::providers::gateway::Answer;
use crate::providers::prompts::{CheckerPrompt, DataBlock, MakerPrompt};
use crate::providers::{ChatRequest, Gateway, ProviderError};

/// Maximum chunks a run keeps over all its retrieval queries.
pub const MAX_RUN_CHUNKS: usize = 24;

/// A stage of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Search the published knowledge for each retrieval query.
    Retrieve,
    /// Propose operations.
    Maker,
    /// Check the operations.
    Checker,
    /// Score and decide.
    Consensus,
    /// Store the items and move the conversation.
    Persist,
    /// Nothing left to run.
    Done,
}

impl Stage {
    /// The stages that run as jobs, in order.
    pub const CHAIN: [Stage; 5] = [
        Stage::Retrieve,
        Stage::Maker,
        Stage::Checker,
        Stage::Consensus,
        Stage::Persist,
    ];

    /// Returns the name stored in `recommendation_runs.stage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Retrieve => "retrieve",
            Stage::Maker => "maker",
            Stage::Checker => "checker",
            Stage::Consensus => "consensus",
            Stage::Persist => "persist",
            Stage::Done => "done",
        }
    }

    /// Returns the kind of the stage's job.
    pub fn job_kind(self) -> &'static str {
        match self {
            Stage::Retrieve => "recommendation.retrieve",
            Stage::Maker => "recommendation.maker",
            Stage::Checker => "recommendation.checker",
            Stage::Consensus => "recommendation.consensus",
            Stage::Persist => "recommendation.persist",
            Stage::Done => "recommendation.done",
        }
    }

    fn next(self) -> Stage {
        match self {
            Stage::Retrieve => Stage::Maker,
            Stage::Maker => Stage::Checker,
            Stage::Checker => Stage::Consensus,
            Stage::Consensus => Stage::Persist,
            Stage::Persist | Stage::Done => Stage::Done,
        }
    }

    /// Progress shown once the stage is done, in percent.
    fn progress_after(self) -> i16 {
        match self {
            Stage::Retrieve => 20,
            Stage::Maker => 45,
            Stage::Checker => 70,
            Stage::Consensus => 90,
            Stage::Persist | Stage::Done => 100,
        }
    }

    /// Column that stores the stage's output.
    fn output_column(self) -> &'static str {
        match self {
            Stage::Retrieve => "chunks",
            Stage::Maker => "maker_output",
            Stage::Checker => "checker_output",
            Stage::Consensus | Stage::Persist | Stage::Done => "consensus",
        }
    }
}

/// Registers one handler per stage.
pub fn register(
    mut registry: Registry,
    embedder: Arc<dyn Embedder>,
    gateway: Arc<Gateway>,
) -> Registry {
    for stage in Stage::CHAIN {
        registry = registry.register(
            stage.job_kind(),
            StageHandler {
                stage,
                embedder: Arc::clone(&embedder),
                gateway: Arc::clone(&gateway),
            },
        );
    }
    registry
}

/// The handler of one stage.
struct StageHandler {
    stage: Stage,
    embedder: Arc<dyn Embedder>,
    /// The model providers that the maker and the checker call first. The offline rules respond
    /// when none is configured or usable.
    gateway: Arc<Gateway>,
}

/// The run facts a stage starts from.
struct Run {
    id: Uuid,
    tenant_id: Uuid,
    conversation_id: ConversationId,
    site_code: String,
    facts: CollectedData,
    chunks: Vec<StoredChunk>,
    maker: Option<MakerOutput>,
    checker: Option<CheckerOutput>,
    consensus: Option<Consensus>,
}

impl Run {
    fn retrieved(&self) -> Vec<RetrievedChunk> {
        self.chunks
            .iter()
            .map(|stored| stored.chunk.clone())
            .collect()
    }
}

#[async_trait::async_trait]
impl JobHandler for StageHandler {
    /// Idempotent: see the module documentation.
    async fn run(&self, job: &JobContext, args: Value) -> Result<(), JobError> {
        let run_id: Uuid = args
            .get("run_id")
            .and_then(Value::as_str)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                JobError::permanent(format!("{} job {} has no run_id", job.kind, job.job_id))
            })?;
        let tenant_id = job.tenant_id.ok_or_else(|| {
            JobError::permanent(format!("{} job {} has no tenant", job.kind, job.job_id))
        })?;
        let Some(run) = load(&job.pool, tenant_id, run_id, self.stage).await? else {
            tracing::info!(%run_id, stage = self.stage.as_str(), "run already past this stage");
            return Ok(());
        };
        job.progress(10, Some(self.stage.as_str())).await?;

        let result = match self.stage {
            Stage::Retrieve => self.retrieve(job, &run).await,
            Stage::Maker => self.maker(job, &run).await,
            Stage::Checker => self.checker(job, &run).await,
            Stage::Consensus => consensus_of(&run),
            Stage::Persist => persist(job, &run).await.map(|()| Value::Null),
            Stage::Done => Ok(Value::Null),
        };
        let error = match result {
            Ok(_) if self.stage == Stage::Persist => return Ok(()),
            Ok(output) => match advance(job, &run, self.stage, output).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            },
            Err(error) => error,
        };
        let permanent = error.class == ErrorClass::Permanent;
        let message = format!("{} failed: {}", job.kind, error.message());
        if let Err(record_error) = record_failure(job, &run, &message, permanent).await {
            tracing::error!(run_id = %run.id, error = ?record_error, "recording a run failure failed");
        }
        Err(error)
    }
}

/// Records a stage failure. A permanent one fails the run and the conversation at once; any
/// other is noted on the run, and the job system retries the stage.
async fn record_failure(
    job: &JobContext,
    run: &Run,
    message: &str,
    permanent: bool,
) -> Result<(), JobError> {
    let run_id = run.id;
    let mut tx = job.pool.begin().await?;
    if !permanent {
        sqlx::query("UPDATE recommendation_runs SET error = $2, updated_at = now() WHERE id = $1")
            .bind(run_id)
            .bind(message)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(());
    }
    let updated = sqlx::query(
        "UPDATE recommendation_runs SET status = 'failed', error = $2, updated_at = now(), \
                finished_at = now() \
          WHERE id = $1 AND status = 'running'",
    )
    .bind(run_id)
    .bind(message)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 1 {
        let moved = apply_event(
            &mut tx,
            run.tenant_id,
            run.conversation_id,
            Event::Fail,
            None,
            &MoveBy::system(job.correlation_id.clone()),
            json!({ "run_id": run_id, "reason": message }),
        )
        .await;
        if let Err(error) = moved {
            tracing::warn!(%run_id, error = ?error, "the conversation of a failed run kept its state");
        }
    }
    tx.commit().await?;
    tracing::error!(%run_id, error = message, "recommendation run failed");
    Ok(())
}

async fn load(
    pool: &PgPool,
    tenant_id: Uuid,
    run_id: Uuid,
    stage: Stage,
) -> Result<Option<Run>, JobError> {
    let Some(row) = sqlx::query(
        "SELECT r.id, r.conversation_id, r.chunks, r.maker_output, r.checker_output, r.consensus, \
                c.site_code, c.collected_data \
           FROM recommendation_runs r JOIN conversation_sessions c ON c.id = r.conversation_id \
          WHERE r.id = $1 AND r.tenant_id = $2 AND r.status = 'running' AND r.stage = $3",
    )
    .bind(run_id)
    .bind(tenant_id)
    .bind(stage.as_str())
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let facts = parse_column(row.get("collected_data"), "collected_data")?;
    let chunks: Option<Value> = row.get("chunks");
    let maker: Option<Value> = row.get("maker_output");
    let checker: Option<Value> = row.get("checker_output");
    let consensus: Option<Value> = row.get("consensus");
    Ok(Some(Run {
        id: row.get("id"),
        tenant_id,
        conversation_id: row.get("conversation_id"),
        site_code: row.get("site_code"),
        facts,
        chunks: chunks
            .map(|value| parse_column(value, "chunks"))
            .transpose()?
            .unwrap_or_default(),
        maker: maker
            .map(|value| parse_column(value, "maker_output"))
            .transpose()?,
        checker: checker
            .map(|value| parse_column(value, "checker_output"))
            .transpose()?,
        consensus: consensus
            .map(|value| parse_column(value, "consensus"))
            .transpose()?,
    }))
}

fn parse_column<T: serde::de::DeserializeOwned>(value: Value, column: &str) -> Result<T, JobError> {
    serde_json::from_value(value)
        .map_err(|error| JobError::permanent(format!("stored {column} is invalid: {error}")))
}

fn missing(stage: Stage, input: &str) -> JobError {
    JobError::permanent(format!(
        "stage {} found no {input} on the run",
        stage.as_str()
    ))
}

impl StageHandler {
    /// Searches the published knowledge for each retrieval query, keeps each query's top
    /// chunks, and merges them by chunk, best score first.
    async fn retrieve(&self, job: &JobContext, run: &Run) -> Result<Value, JobError> {
        let queries = offline::rules::retrieval_queries(&run.facts);
        let now = OffsetDateTime::now_utc();
        let mut best: BTreeMap<Uuid, (f64, StoredChunk)> = BTreeMap::new();
        // One embedding call for every query: a provider backend counts one request.
        let vectors = self
            .embedder
            .embed_for(TenantId(run.tenant_id), &job.correlation_id, &queries)
            .await
            .map_err(|error| {
                JobError::from(error).context("embedding the retrieval queries failed")
            })?;
        if vectors.len() != queries.len() {
            return Err(JobError::model_provider(format!(
                "the embedder returned {} vectors for {} retrieval queries",
                vectors.len(),
                queries.len()
            )));
        }
        for (query, vector) in queries.iter().zip(&vectors) {
            let hits = search(
                &job.pool,
                run.tenant_id,
                query,
                vector,
                self.embedder.model_id(),
                DEFAULT_K,
            )
            .await?;
            for hit in hits {
                let stored = StoredChunk {
                    chunk: RetrievedChunk::from_hit(&hit, now),
                    section_path: hit.section_path.clone(),
                };
                let keep = best
                    .get(&hit.chunk_id)
                    .is_none_or(|(score, _)| hit.score > *score);
                if keep {
                    best.insert(hit.chunk_id, (hit.score, stored));
                }
            }
        }
        let mut ranked: Vec<(f64, StoredChunk)> = best.into_values().collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.truncate(MAX_RUN_CHUNKS);
        let chunks: Vec<StoredChunk> = ranked.into_iter().map(|(_, stored)| stored).collect();
        tracing::info!(run_id = %run.id, queries = queries.len(), chunks = chunks.len(), "retrieval done");
        Ok(json!(chunks))
    }
}

impl StageHandler {
    /// Proposes operations: a model provider through the gateway when one responds, else the
    /// offline maker. Both outputs pass the same strict parse.
    async fn maker(&self, job: &JobContext, run: &Run) -> Result<Value, JobError> {
        let chunks = run.retrieved();
        let prompt = MakerPrompt {
            site_code: run.site_code.clone(),
            facts: json!(run.facts),
            messages: user_messages(&job.pool, run).await?,
            chunks: chunk_blocks(&chunks),
        };
        let request = prompt.to_request(MAKER_SCHEMA_NAME, maker_schema());
        if let Some(output) = self
            .ask(job, run, "maker", request, parse_model_maker_output)
            .await?
        {
            return Ok(json!(output));
        }
        let output = offline::propose(
            &run.site_code,
            &run.facts,
            &chunks,
            &MakerSettings::default(),
        )
        .map_err(|error| JobError::permanent(error.to_string()))?;
        let output = parse_maker_output(&json!(output), &chunks).map_err(|errors| {
            JobError::permanent(format!("maker output is invalid: {}", errors.join("; ")))
        })?;
        Ok(json!(output))
    }

    /// Checks the maker's operations: a model provider through the gateway when one responds,
    /// else the offline rules against the chunks and the tenant's configuration.
    async fn checker(&self, job: &JobContext, run: &Run) -> Result<Value, JobError> {
        let maker = run
            .maker
            .as_ref()
            .ok_or_else(|| missing(Stage::Checker, "maker output"))?;
        let chunks = run.retrieved();
        let items = maker.items.len();
        let prompt = CheckerPrompt {
            site_code: run.site_code.clone(),
            facts: json!(run.facts),
            proposal: json!(maker),
            items,
            chunks: chunk_blocks(&chunks),
        };
        let request = prompt.to_request(CHECKER_SCHEMA_NAME, checker_schema());
        let parse = |value: &Value| parse_checker_output(value, items);
        if let Some(output) = self.ask(job, run, "checker", request, parse).await? {
            return Ok(json!(output));
        }
        let existing = existing_configuration(&job.pool, run.tenant_id).await?;
        let output = offline::check(&maker.items, &chunks, &existing);
        let output = parse_checker_output(&json!(output), items).map_err(|errors| {
            JobError::permanent(format!("checker output is invalid: {}", errors.join("; ")))
        })?;
        Ok(json!(output))
    }

    /// Sends a rendered prompt through the gateway as `template` and returns the parsed output
    /// of the model that answered, or `None` when the offline rules must answer instead.
    async fn ask<T>(
        &self,
        job: &JobContext,
        run: &Run,
        template: &str,
        request: Result<ChatRequest, ProviderError>,
        parse: impl Fn(&Value) -> Result<T, Vec<String>>,
    ) -> Result<Option<T>, JobError> {
        let mut request = request.map_err(|error| JobError::permanent(error.to_string()))?;
        // Operation keys and fields are open objects, which strict mode rejects. The parse of
        // the response is strict instead.
        request.strict_schema = false;
        let answer = self
            .gateway
            .chat(
                TenantId(run.tenant_id),
                template,
                &request,
                &job.correlation_id,
                parse,
            )
            .await
            .map_err(JobError::from)?;
        let (source, output) = match answer {
            Answer::Model(answer) => {
                tracing::info!(run_id = %run.id, template, provider = answer.provider.as_str(), model = answer.model, repaired = answer.repaired, "a model responded");
                let source = format!("{} through the {} provider", answer.model, answer.provider);
                (source, Some(answer.output))
            }
            Answer::Offline(reason) => {
                tracing::info!(run_id = %run.id, template, reason = %reason, "the offline rules responded");
                (format!("the offline rules, because {reason}"), None)
            }
        };
        record_source(&job.pool, run.id, template, &source).await?;
        Ok(output)
    }
}

/// Stores what produced the output of a run's `maker` or `checker` stage: a model, or the
/// offline rules and the reason, which the proposal then shows.
async fn record_source(
    pool: &PgPool,
    run_id: Uuid,
    template: &str,
    source: &str,
) -> Result<(), JobError> {
    let query = match template {
        "maker" => "UPDATE recommendation_runs SET maker_source = $2 WHERE id = $1",
        "checker" => "UPDATE recommendation_runs SET checker_source = $2 WHERE id = $1",
        other => {
            return Err(JobError::permanent(format!(
                "no source column for the stage template {other:?}"
            )))
        }
    };
    sqlx::query(query)
        .bind(run_id)
        .bind(source)
        .execute(pool)
        .await?;
    Ok(())
}

/// Converts the run's retrieved chunks to fenced data blocks; a citation names a block's id.
fn chunk_blocks(chunks: &[RetrievedChunk]) -> Vec<DataBlock> {
    chunks
        .iter()
        .map(|chunk| {
            DataBlock::document_chunk(
                chunk.chunk_id,
                chunk.authority.as_str(),
                chunk.flagged,
                &chunk.document_title,
                &chunk.text,
            )
        })
        .collect()
}

/// Loads the user messages of the run's conversation, oldest first, as fenced data blocks.
async fn user_messages(pool: &PgPool, run: &Run) -> Result<Vec<DataBlock>, JobError> {
    let rows: Vec<(Uuid, String, Vec<String>)> = sqlx::query_as(
        "SELECT id, text, flags FROM conversation_messages \
          WHERE tenant_id = $1 AND conversation_id = $2 AND role = 'user' \
          ORDER BY created_at, id",
    )
    .bind(run.tenant_id)
    .bind(run.conversation_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, text, flags)| {
            let flagged = flags
                .iter()
                .any(|flag| flag == crate::conversations::messages::FLAG_INJECTION);
            DataBlock::user_message(id, flagged, &text)
        })
        .collect())
}

/// Reads the tenant's existing sites, zones and assets, which operations may refer to.
async fn existing_configuration(
    pool: &PgPool,
    tenant_id: Uuid,
) -> Result<ExistingConfiguration, JobError> {
    let site_codes: Vec<String> = sqlx::query_scalar("SELECT code FROM sites WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_all(pool)
        .await?;
    let zones: Vec<(String, String)> =
        sqlx::query_as("SELECT site_code, code FROM zones WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_all(pool)
            .await?;
    let assets: Vec<(String, String)> =
        sqlx::query_as("SELECT site_code, code FROM assets WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_all(pool)
            .await?;
    Ok(ExistingConfiguration {
        site_codes: site_codes.into_iter().collect::<BTreeSet<_>>(),
        zones: zones.into_iter().collect(),
        assets: assets.into_iter().collect(),
    })
}

/// Scores the proposal with the deterministic consensus.
fn consensus_of(run: &Run) -> Result<Value, JobError> {
    let maker = run
        .maker
        .as_ref()
        .ok_or_else(|| missing(Stage::Consensus, "maker output"))?;
    let checker = run
        .checker
        .as_ref()
        .ok_or_else(|| missing(Stage::Consensus, "checker output"))?;
    let result = consensus::decide(
        maker,
        Some(checker),
        &run.retrieved(),
        &ConsensusSettings::default(),
    );
    Ok(json!(result))
}

/// Stores the stage's output and queues the next stage, if the run is still at this stage.
async fn advance(job: &JobContext, run: &Run, stage: Stage, output: Value) -> Result<(), JobError> {
    let next = stage.next();
    let mut tx = job.pool.begin().await?;
    let mut sql = format!(
        "UPDATE recommendation_runs SET {} = $3, stage = $4, progress = $5, error = NULL, \
                updated_at = now()",
        stage.output_column()
    );
    if stage == Stage::Consensus {
        sql.push_str(
            ", decision = $3->>'decision', confidence = ($3->>'confidence')::double precision, \
               terms = $3->'terms', \
               removed_unsupported = ($3->>'removed_unsupported')::integer, \
               removed_unknown = ($3->>'removed_unknown')::integer",
        );
    }
    sql.push_str(" WHERE id = $1 AND stage = $2 AND status = 'running'");
    let updated = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(run.id)
        .bind(stage.as_str())
        .bind(&output)
        .bind(next.as_str())
        .bind(stage.progress_after())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if updated == 0 {
        tracing::info!(run_id = %run.id, stage = stage.as_str(), "another delivery advanced the run");
        return Ok(());
    }
    let enqueued = jobs::enqueue(
        &mut tx,
        stage_job(next, run.id, run.tenant_id, &job.correlation_id),
    )
    .await?;
    sqlx::query("UPDATE recommendation_runs SET job_id = $2 WHERE id = $1")
        .bind(run.id)
        .bind(enqueued.job_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(run_id = %run.id, stage = stage.as_str(), next = next.as_str(), "run stage done");
    Ok(())
}

/// Stores the kept items with their citations, finishes the run, and moves the conversation:
/// to awaiting_user_approval, or to error with the approvers notified when the consensus
/// escalates.
async fn persist(job: &JobContext, run: &Run) -> Result<(), JobError> {
    let consensus = run
        .consensus
        .as_ref()
        .ok_or_else(|| missing(Stage::Persist, "consensus"))?;
    let by_id: BTreeMap<Uuid, &StoredChunk> = run
        .chunks
        .iter()
        .map(|stored| (stored.chunk.chunk_id, stored))
        .collect();
    let mut tx = job.pool.begin().await?;
    let finished = sqlx::query(
        "UPDATE recommendation_runs SET stage = 'done', status = 'succeeded', progress = 100, \
                error = NULL, updated_at = now(), finished_at = now() \
          WHERE id = $1 AND stage = 'persist' AND status = 'running'",
    )
    .bind(run.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if finished == 0 {
        return Ok(());
    }
    for (ordinal, item) in consensus.items.iter().enumerate() {
        let citations: Vec<Citation> = item
            .citations
            .iter()
            .filter_map(|id| by_id.get(id).map(|stored| Citation::of(stored)))
            .collect();
        sqlx::query(
            "INSERT INTO recommendation_items (id, tenant_id, run_id, ordinal, operation, \
                                               rationale, confidence, citations, findings) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (run_id, ordinal) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(run.tenant_id)
        .bind(run.id)
        .bind(ordinal as i32)
        .bind(json!(item.operation))
        .bind(&item.rationale)
        .bind(item.confidence.clamp(0.0, 1.0))
        .bind(json!(citations))
        .bind(json!(item.findings))
        .execute(&mut *tx)
        .await?;
    }

    let conversation = conversations::find(&mut tx, run.tenant_id, run.conversation_id)
        .await?
        .ok_or_else(|| missing(Stage::Persist, "conversation"))?;
    let state = ConversationState::parse(&conversation.state);
    let by = MoveBy::system(job.correlation_id.clone());
    let moved = if state != Some(ConversationState::GeneratingRecommendations) {
        tracing::info!(run_id = %run.id, state = conversation.state, "conversation left generating before its run finished");
        Ok(())
    } else if consensus.decision == Decision::Escalate {
        let reason = if consensus.escalation_reasons.is_empty() {
            format!(
                "the proposal's confidence {:.2} is too low",
                consensus.confidence
            )
        } else {
            consensus.escalation_reasons.join("; ")
        };
        escalate_in(
            &mut tx,
            run.tenant_id,
            &conversation,
            &reason,
            &by,
            &job.correlation_id,
        )
        .await
        .map(|_| ())
    } else {
        apply_event(
            &mut tx,
            run.tenant_id,
            run.conversation_id,
            Event::ProposalReady,
            None,
            &by,
            json!({ "run_id": run.id, "decision": consensus.decision }),
        )
        .await
        .map(|_| ())
    };
    moved.map_err(|error| JobError::new(ErrorClass::Database, format!("{error:?}")))?;
    tx.commit().await?;
    tracing::info!(run_id = %run.id, items = consensus.items.len(), decision = ?consensus.decision, "recommendation run finished");
    Ok(())
}
