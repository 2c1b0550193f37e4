//! Runtime configuration from flags and environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use backend::jobs::policy::{RetryPolicy, RetryRule};
use backend::jobs::JobSettings;
use backend::settings::Settings;
use clap::{Args, ValueEnum};

/// Format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Options every subcommand that touches the database shares.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL URL, e.g. postgres://user@127.0.0.1:5432/siteline. `make run` sets it to the
    /// project-local cluster when unset.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Largest number of pooled database connections per process.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
}

/// Options of the web server.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Address and port to listen on.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Directory holding the built site (`pkg/` with the wasm, JavaScript and CSS).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,

    /// Mark session cookies `Secure`; turn on whenever users reach the site over https.
    #[arg(long, env = "SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,

    /// Extra origins trusted for cookie-authenticated writes, comma-separated
    /// (e.g. https://siteline.example.com behind a proxy that rewrites Host).
    #[arg(long, env = "TRUSTED_ORIGINS", value_delimiter = ',')]
    pub trusted_origins: Vec<String>,

    /// Minutes without a request after which a session ends.
    #[arg(long, env = "SESSION_IDLE_MINUTES", default_value_t = 30)]
    pub session_idle_minutes: u64,

    /// Hours after sign-in after which a session ends, however active.
    #[arg(long, env = "SESSION_ABSOLUTE_HOURS", default_value_t = 12)]
    pub session_absolute_hours: u64,

    /// Failed sign-ins allowed per account and per client address inside the window.
    #[arg(long, env = "LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// Length of the failed sign-in window, in minutes.
    #[arg(long, env = "LOGIN_WINDOW_MINUTES", default_value_t = 15)]
    pub login_window_minutes: u64,

    /// Largest JSON request body, in KiB.
    #[arg(long, env = "JSON_BODY_LIMIT_KB", default_value_t = 256)]
    pub json_body_limit_kb: usize,
}

impl WebArgs {
    /// Builds the backend settings these options describe.
    pub fn settings(&self) -> Settings {
        Settings {
            session_idle_timeout: Duration::from_secs(self.session_idle_minutes * 60),
            session_absolute_timeout: Duration::from_secs(self.session_absolute_hours * 3600),
            login_max_failures: self.login_max_failures,
            login_window: Duration::from_secs(self.login_window_minutes * 60),
            json_body_limit: self.json_body_limit_kb * 1024,
            trusted_origins: self
                .trusted_origins
                .iter()
                .map(|origin| origin.trim().to_string())
                .filter(|origin| !origin.is_empty())
                .collect(),
            secure_cookies: self.secure_cookies,
        }
    }
}

/// Options of the background workers.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Seconds between upkeep jobs (expired sessions, old login attempts, dead-letter
    /// retention, lost deliveries). Queued once per period however many workers run.
    #[arg(
        long,
        env = "UPKEEP_SECONDS",
        alias = "session-cleanup-seconds",
        default_value_t = 300
    )]
    pub upkeep_seconds: u64,

    /// Jobs one worker process runs at a time.
    #[arg(long, env = "JOB_CONCURRENCY", default_value_t = 4)]
    pub job_concurrency: usize,

    /// Seconds between worker heartbeats.
    #[arg(long, env = "JOB_HEARTBEAT_SECONDS", default_value_t = 20)]
    pub job_heartbeat_seconds: u64,

    /// Heartbeats a worker may miss before its running jobs go to another worker
    /// (20 s x 3: handed on 60-80 s after a worker dies).
    #[arg(long, env = "JOB_MISSED_HEARTBEATS", default_value_t = 3)]
    pub job_missed_heartbeats: usize,

    /// Milliseconds between polls for scheduled retries that have come due.
    #[arg(long, env = "JOB_POLL_MS", default_value_t = 1000)]
    pub job_poll_ms: u64,

    /// Retry rule for database errors: retries,base,factor,cap.
    #[arg(long, env = "JOB_RETRY_DATABASE", default_value = "3,1s,2,30s")]
    pub job_retry_database: String,

    /// Retry rule for network errors: retries,base,factor,cap.
    #[arg(long, env = "JOB_RETRY_NETWORK", default_value = "5,3s,2,300s")]
    pub job_retry_network: String,

    /// Retry rule for model provider errors: retries,base,factor,cap.
    #[arg(long, env = "JOB_RETRY_MODEL_PROVIDER", default_value = "4,5s,3,600s")]
    pub job_retry_model_provider: String,

    /// Retry rule for 429 responses without Retry-After: retries,base,factor,cap.
    #[arg(long, env = "JOB_RETRY_RATE_LIMITED", default_value = "8,30s,2,60m")]
    pub job_retry_rate_limited: String,

    /// Retry rule for an open circuit breaker without a reopen time: retries,base,factor,cap.
    #[arg(
        long,
        env = "JOB_RETRY_CIRCUIT_OPEN",
        default_value = "unlimited,60s,1,60s"
    )]
    pub job_retry_circuit_open: String,

    /// Attempts one run of a job may make across all error classes.
    #[arg(long, env = "JOB_MAX_ATTEMPTS_PER_RUN", default_value_t = 50)]
    pub job_max_attempts_per_run: u32,

    /// Dead letters kept per tenant; beyond it the oldest non-critical ones are deleted first.
    #[arg(long, env = "DEAD_LETTER_CAP", default_value_t = 10_000)]
    pub dead_letter_cap: i64,

    /// Days dead letters are kept.
    #[arg(long, env = "DEAD_LETTER_RETENTION_DAYS", default_value_t = 30)]
    pub dead_letter_retention_days: u64,

    /// Post a Slack-style JSON message here when a critical job fails for good.
    #[arg(long, env = "ALERT_WEBHOOK_URL")]
    pub alert_webhook_url: Option<String>,

    /// The site's public address (e.g. https://siteline.example.com), for links in alerts.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Register the demo.fail job, which fails on demand; for tests and demos only.
    #[arg(long, env = "DEMO_JOBS", default_value_t = false)]
    pub demo_jobs: bool,

    /// Let outbound requests (alert webhook) reach 127.0.0.1 and ::1; for development and
    /// tests only.
    #[arg(long, env = "OUTBOUND_ALLOW_LOOPBACK", default_value_t = false)]
    pub outbound_allow_loopback: bool,
}

impl WorkerArgs {
    /// Builds the job settings these options describe, or returns an error naming the invalid
    /// option.
    pub fn settings(&self) -> anyhow::Result<JobSettings> {
        let rule = |name: &str, text: &str| {
            RetryRule::parse(text).map_err(|error| anyhow::anyhow!("{name}: {error}"))
        };
        let policy = RetryPolicy {
            database: rule("JOB_RETRY_DATABASE", &self.job_retry_database)?,
            network: rule("JOB_RETRY_NETWORK", &self.job_retry_network)?,
            model_provider: rule("JOB_RETRY_MODEL_PROVIDER", &self.job_retry_model_provider)?,
            rate_limited: rule("JOB_RETRY_RATE_LIMITED", &self.job_retry_rate_limited)?,
            circuit_open: rule("JOB_RETRY_CIRCUIT_OPEN", &self.job_retry_circuit_open)?,
            max_attempts_per_run: self.job_max_attempts_per_run.max(1),
        };
        if self.job_heartbeat_seconds == 0 || self.job_missed_heartbeats == 0 {
            anyhow::bail!(
                "JOB_HEARTBEAT_SECONDS and JOB_MISSED_HEARTBEATS must be at least 1 (got {} and \
                 {})",
                self.job_heartbeat_seconds,
                self.job_missed_heartbeats
            );
        }
        let webhook = self
            .alert_webhook_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty());
        Ok(JobSettings {
            policy,
            dead_letter_cap: self.dead_letter_cap.max(1),
            dead_letter_retention: Duration::from_secs(self.dead_letter_retention_days * 86_400),
            heartbeat: Duration::from_secs(self.job_heartbeat_seconds),
            missed_heartbeats: self.job_missed_heartbeats,
            poll_interval: Duration::from_millis(self.job_poll_ms.max(50)),
            concurrency: self.job_concurrency.max(1),
            upkeep_interval: Duration::from_secs(self.upkeep_seconds.max(1)),
            demo_jobs: self.demo_jobs,
            alert_webhook_url: webhook.map(str::to_string),
            public_url: self.public_url.clone(),
            outbound_allow_loopback: self.outbound_allow_loopback,
            ..JobSettings::default()
        })
    }
}
