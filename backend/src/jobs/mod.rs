//! Background jobs: the envelope, the retry table, dead letters and the handlers.
//!
//! apalis-postgres is the transport: it stores deliveries in `apalis.jobs` and hands them to
//! workers, at least once (a dead worker's deliveries are handed on after missed heartbeats).
//! apalis-postgres 1.0 retries without backoff and has no dead letters, so the job's life is
//! kept in our `job_ledger`:
//!
//! - [`ledger::enqueue`] writes the ledger row and the first delivery in the caller's
//!   transaction.
//! - [`runner::Runner`] claims a delivery's attempt, runs its handler, and records the outcome.
//!   A failure is classified ([`error::ErrorClass`]), and the retry table
//!   ([`policy::RetryPolicy`]) either schedules the next attempt as a new delivery with `run_at`, or the job dies and its
//!   sanitized dead letter is written in the same transaction.
//! - [`dead_letters`] lists, retries and discards dead letters for admins.
//!
//! Every handler is idempotent; each documents how a second delivery stays correct.

pub mod alerts;
pub mod dead_letters;
pub mod demo;
pub mod error;
pub mod ledger;
pub mod policy;
pub mod runner;
pub mod sanitize;
pub mod upkeep;
pub mod wake;

use std::sync::Arc;
use std::time::Duration;

use apalis_postgres::{Config, PostgresStorage};
use sqlx::PgPool;

pub use error::{ErrorClass, JobError};
pub use ledger::{enqueue, enqueue_now, Envelope, NewJob};
pub use policy::RetryPolicy;
pub use runner::{JobContext, JobHandler, Registry, Runner};

/// The apalis queue (its `job_type`) that carries every Siteline job.
pub const JOB_QUEUE: &str = "siteline";

/// Job kinds whose failure raises an alert: applying and rolling back configuration changes,
/// and conversation turns.
pub const CRITICAL_KINDS: [&str; 3] = [
    "change_set.apply",
    "change_set.rollback",
    "conversation.turn",
];

/// Returns whether jobs of `kind` raise an alert when they fail for good.
pub fn is_critical_kind(kind: &str) -> bool {
    CRITICAL_KINDS.contains(&kind)
}

/// The shortest retention of provider call records: the monthly token budget sums the calls
/// of the current calendar month, which can reach 31 days back.
pub const MIN_PROVIDER_CALL_RETENTION: Duration = Duration::from_secs(32 * 24 * 3600);

/// Settings of the job system, with the product's defaults.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// The retry table.
    pub policy: RetryPolicy,
    /// Dead letters kept per tenant; beyond it the oldest non-critical rows go first.
    pub dead_letter_cap: i64,
    /// Dead letters older than this are deleted.
    pub dead_letter_retention: Duration,
    /// Succeeded jobs are kept this long in the ledger, for their pages and for debugging.
    pub finished_job_retention: Duration,
    /// Model provider call records are kept this long; at least [`MIN_PROVIDER_CALL_RETENTION`].
    pub provider_call_retention: Duration,
    /// How often a worker reports that it is alive.
    pub heartbeat: Duration,
    /// Heartbeats a worker may miss before its running jobs are handed to another worker.
    pub missed_heartbeats: usize,
    /// How often workers look for scheduled deliveries that have come due (new deliveries
    /// wake them at once through LISTEN/NOTIFY).
    pub poll_interval: Duration,
    /// Jobs one worker process runs at a time.
    pub concurrency: usize,
    /// How often the upkeep job runs.
    pub upkeep_interval: Duration,
    /// A queued or running job untouched this long, whose delivery apalis no longer holds, is
    /// recorded as a failed attempt by the upkeep sweep.
    pub lost_after: Duration,
    /// Register the `demo.fail` handler, which exists for tests.
    pub demo_jobs: bool,
    /// Webhook URL that receives alerts about critical dead letters (Slack-style JSON).
    pub alert_webhook_url: Option<String>,
    /// The site's public address, for links in alerts.
    pub public_url: Option<String>,
    /// Exact loopback addresses and ports that outbound requests (the alert webhook) may reach;
    /// for development and tests only.
    pub outbound_loopback_exceptions: Vec<std::net::SocketAddr>,
    /// Limits of the knowledge pipeline's jobs.
    pub knowledge: crate::knowledge::KnowledgeSettings,
    /// Idle and generating time limits of conversations, which the upkeep enforces.
    pub conversations: crate::conversations::lifecycle::ConversationSettings,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            policy: RetryPolicy::default(),
            dead_letter_cap: 10_000,
            dead_letter_retention: Duration::from_secs(30 * 24 * 3600),
            finished_job_retention: Duration::from_secs(30 * 24 * 3600),
            provider_call_retention: Duration::from_secs(90 * 24 * 3600),
            // 20 s x 3 missed: a killed worker's jobs are handed on 60-80 s after it died.
            heartbeat: Duration::from_secs(20),
            missed_heartbeats: 3,
            poll_interval: Duration::from_secs(1),
            concurrency: 4,
            upkeep_interval: Duration::from_secs(300),
            lost_after: Duration::from_secs(600),
            demo_jobs: false,
            alert_webhook_url: None,
            public_url: None,
            outbound_loopback_exceptions: Vec::new(),
            knowledge: crate::knowledge::KnowledgeSettings::default(),
            conversations: crate::conversations::lifecycle::ConversationSettings::default(),
        }
    }
}

impl JobSettings {
    /// Time after which a silent worker's jobs are handed on.
    pub fn orphaned_after(&self) -> Duration {
        self.heartbeat * self.missed_heartbeats as u32
    }
}

/// Creates the apalis storage of the job queue with the heartbeat settings.
pub fn storage(pool: &PgPool, settings: &JobSettings) -> PostgresStorage<serde_json::Value> {
    PostgresStorage::new(pool).with_config(
        Config::default()
            .queue(JOB_QUEUE)
            .heartbeat_interval(settings.heartbeat)
            .missed_heartbeats(settings.missed_heartbeats),
    )
}

/// Creates or upgrades apalis's own tables, in their `apalis` schema.
pub async fn setup_queue(pool: &PgPool) -> anyhow::Result<()> {
    PostgresStorage::<()>::setup(pool)
        .await
        .map_err(|error| anyhow::anyhow!("job queue set-up failed: {error}"))
}

/// Classifies a failed outbound request: refusals, oversized bodies and 4xx are permanent, 429
/// is rate limited (with its `Retry-After`), and everything else is a network error.
pub fn net_error(error: crate::net::FetchError) -> JobError {
    let message = error.to_string();
    if let Some(wait) = error.retry_after() {
        return JobError::rate_limited(message, Some(wait));
    }
    if matches!(error, crate::net::FetchError::RateLimited { .. }) {
        return JobError::rate_limited(message, None);
    }
    if error.is_permanent() {
        return JobError::permanent(message);
    }
    JobError::network(message)
}

/// Services that job handlers call outside the database: the embedder and the model providers.
#[derive(Clone)]
pub struct Services {
    /// Embeds knowledge chunks and search queries.
    pub embedder: Arc<dyn crate::knowledge::embed::Embedder>,
    /// The model provider chain that turns and recommendation stages ask first.
    pub gateway: Arc<crate::providers::Gateway>,
}

impl Services {
    /// Builds the embedded defaults: the local model that `settings` name, loaded on first use, and
    /// no model provider but the offline rules.
    pub fn local(pool: &PgPool, settings: &JobSettings) -> Self {
        Self {
            embedder: Arc::new(crate::knowledge::LazyEmbedder::local(
                settings.knowledge.embedding.clone(),
            )),
            gateway: Arc::new(crate::providers::Gateway::offline_only(pool.clone())),
        }
    }
}

/// Builds the registry of every handler this process runs, with the embedded defaults.
pub fn registry(pool: &PgPool, settings: &JobSettings) -> anyhow::Result<Registry> {
    registry_with(pool, settings, Services::local(pool, settings))
}

/// Builds the registry of every handler this process runs, calling out through `services`.
pub fn registry_with(
    pool: &PgPool,
    settings: &JobSettings,
    services: Services,
) -> anyhow::Result<Registry> {
    let Services { embedder, gateway } = services;
    let mut registry = Registry::new()
        .register(
            upkeep::UPKEEP_KIND,
            upkeep::UpkeepHandler::new(settings.clone()),
        )
        .register(
            alerts::ALERT_KIND,
            alerts::AlertHandler::new(pool.clone(), settings),
        )
        .register(
            crate::conversations::lifecycle::ESCALATION_ALERT_KIND,
            alerts::EscalationAlertHandler::new(settings),
        )
        .register(
            crate::changes::APPLY_KIND,
            crate::changes::apply::ApplyHandler,
        )
        .register(
            crate::conversations::messages::TURN_KIND,
            crate::conversations::messages::TurnHandler,
        );
    if settings.demo_jobs {
        registry = registry.register(demo::DEMO_KIND, demo::DemoFailHandler);
    }
    registry = crate::recommendations::stages::register(registry, Arc::clone(&embedder), gateway);
    let pipeline = Arc::new(crate::knowledge::pipeline::Pipeline::new(
        settings.knowledge.clone(),
        embedder,
    ));
    registry = pipeline.register(registry);
    Ok(registry)
}
