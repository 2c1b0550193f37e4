//! Runtime configuration from flags and environment variables.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backend::conversations::lifecycle::ConversationSettings;
use backend::jobs::policy::{RetryPolicy, RetryRule};
use backend::jobs::JobSettings;
use backend::knowledge::embed::{EmbeddingSettings, ProviderEmbedding};
use backend::knowledge::KnowledgeSettings;
use backend::net::parse_loopback_exceptions;
use backend::providers::settings::{
    parse_base_url, parse_chain, BreakerSettings, PriceTable, ProviderSettings, RateLimits,
    DEFAULT_MONTHLY_TOKEN_BUDGET,
};
use backend::providers::{
    AnthropicConfig, HttpLimits, KeyHeader, OpenAiConfig, OpenAiProvider, ProviderKind,
    SchemaDialect, Secret,
};
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
            ..Settings::default()
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

    /// Days model provider call records are kept (at least 32: budgets sum the current month).
    #[arg(long, env = "PROVIDER_CALL_RETENTION_DAYS", default_value_t = 90)]
    pub provider_call_retention_days: u64,

    /// Post a Slack-style JSON message here when a critical job fails for good.
    #[arg(long, env = "ALERT_WEBHOOK_URL")]
    pub alert_webhook_url: Option<String>,

    /// The site's public address (e.g. https://siteline.example.com), for links in alerts.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Register the demo.fail job, which fails on demand; for tests and demos only.
    #[arg(long, env = "DEMO_JOBS", default_value_t = false)]
    pub demo_jobs: bool,

    /// Comma-separated loopback addresses with ports (such as 127.0.0.1:9000) that outbound
    /// requests (alert webhook) may reach; for development and tests only.
    #[arg(long, env = "OUTBOUND_LOOPBACK_EXCEPTIONS", default_value = "")]
    pub outbound_loopback_exceptions: String,
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
        let provider_call_retention =
            Duration::from_secs(self.provider_call_retention_days.saturating_mul(86_400));
        if provider_call_retention < backend::jobs::MIN_PROVIDER_CALL_RETENTION {
            anyhow::bail!(
                "PROVIDER_CALL_RETENTION_DAYS must be at least 32, because the monthly token \
                 budget sums the current month's calls (got {})",
                self.provider_call_retention_days
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
            provider_call_retention,
            heartbeat: Duration::from_secs(self.job_heartbeat_seconds),
            missed_heartbeats: self.job_missed_heartbeats,
            poll_interval: Duration::from_millis(self.job_poll_ms.max(50)),
            concurrency: self.job_concurrency.max(1),
            upkeep_interval: Duration::from_secs(self.upkeep_seconds.max(1)),
            demo_jobs: self.demo_jobs,
            alert_webhook_url: webhook.map(str::to_string),
            public_url: self.public_url.clone(),
            outbound_loopback_exceptions: parse_loopback_exceptions(
                &self.outbound_loopback_exceptions,
            )
            .map_err(|error| anyhow::anyhow!("OUTBOUND_LOOPBACK_EXCEPTIONS: {error}"))?,
            ..JobSettings::default()
        })
    }
}

/// Options of the model providers: the fallback chain, each provider's connection, and the
/// breaker, rate-limit, budget and price numbers. Base URLs come only from here, never from a
/// request.
#[derive(Debug, Clone, Args)]
pub struct ProviderArgs {
    /// Model providers tried in order, comma-separated: openai, anthropic. The offline rules
    /// always end the chain; empty means offline only.
    #[arg(long, env = "MODEL_PROVIDERS", default_value = "")]
    pub model_providers: String,

    /// API root of the OpenAI-compatible server, ending in /v1 (the client appends
    /// chat/completions and embeddings).
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,

    /// Key of the OpenAI-compatible server; local servers may need none.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub openai_api_key: Option<Secret>,

    /// Header that carries OPENAI_API_KEY: authorization (as a Bearer token) or api-key (Azure
    /// OpenAI).
    #[arg(long, env = "OPENAI_KEY_HEADER", default_value = "authorization")]
    pub openai_key_header: String,

    /// Sent as the api-version query parameter, as Azure OpenAI needs; empty sends none.
    #[arg(long, env = "OPENAI_API_VERSION", default_value = "")]
    pub openai_api_version: String,

    /// Chat model of the OpenAI-compatible server.
    #[arg(long, env = "OPENAI_MODEL")]
    pub openai_model: Option<String>,

    /// Embedding model of the OpenAI-compatible server, used when EMBEDDING_BACKEND is openai.
    #[arg(long, env = "OPENAI_EMBEDDING_MODEL")]
    pub openai_embedding_model: Option<String>,

    /// Vector length to request from the embedding model, for models that shorten their vectors
    /// (OpenAI's text-embedding-3 family). Only 384, the knowledge base's vector length, fits.
    #[arg(long, env = "OPENAI_EMBEDDING_DIMENSIONS")]
    pub openai_embedding_dimensions: Option<u32>,

    /// Output-schema dialect of the OpenAI-compatible server: json_schema (OpenAI, vLLM) or
    /// json_object_schema (llama-cpp-python's server).
    #[arg(long, env = "OPENAI_SCHEMA_DIALECT", default_value = "json_schema")]
    pub openai_schema_dialect: String,

    /// API root of the Anthropic server, without /v1 (the client appends v1/messages).
    #[arg(long, env = "ANTHROPIC_BASE_URL")]
    pub anthropic_base_url: Option<String>,

    /// Key of the Anthropic server, sent as x-api-key.
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub anthropic_api_key: Option<Secret>,

    /// Anthropic model.
    #[arg(long, env = "ANTHROPIC_MODEL")]
    pub anthropic_model: Option<String>,

    /// Seconds one provider request may take, from connecting until the response is read.
    #[arg(long, env = "PROVIDER_TIMEOUT_SECONDS", default_value_t = 120)]
    pub provider_timeout_seconds: u64,

    /// Requests per minute to each provider; 0 is unlimited.
    #[arg(long, env = "PROVIDER_REQUESTS_PER_MINUTE", default_value_t = 60)]
    pub provider_requests_per_minute: u32,

    /// Input plus output tokens per minute to each provider; 0 is unlimited.
    #[arg(long, env = "PROVIDER_TOKENS_PER_MINUTE", default_value_t = 100_000)]
    pub provider_tokens_per_minute: u64,

    /// Failures within the breaker window that open a provider's breaker for a tenant.
    #[arg(long, env = "PROVIDER_BREAKER_FAILURES", default_value_t = 3)]
    pub provider_breaker_failures: u32,

    /// Length of the breaker's failure window, in seconds.
    #[arg(long, env = "PROVIDER_BREAKER_WINDOW_SECONDS", default_value_t = 300)]
    pub provider_breaker_window_seconds: u64,

    /// Seconds an open breaker waits before it lets one probe through.
    #[arg(long, env = "PROVIDER_BREAKER_OPEN_SECONDS", default_value_t = 60)]
    pub provider_breaker_open_seconds: u64,

    /// Tokens each tenant may use per calendar month (UTC) before requests go to the offline
    /// rules; 0 is unlimited.
    #[arg(long, env = "TENANT_MONTHLY_TOKEN_BUDGET", default_value_t = DEFAULT_MONTHLY_TOKEN_BUDGET)]
    pub tenant_monthly_token_budget: u64,

    /// Prices in US dollars per million input/output tokens, per model, for the cost of each
    /// recorded call: model=input/output,... (e.g. gpt-4o-mini=0.15/0.60).
    #[arg(long, env = "PROVIDER_PRICES", default_value = "")]
    pub provider_prices: String,
}

fn parse_secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text.trim()))
}

impl ProviderArgs {
    /// Builds the provider settings these options describe, or returns an error naming the
    /// variable at fault and how to fix it.
    pub fn settings(&self) -> anyhow::Result<ProviderSettings> {
        let chain = parse_chain(&self.model_providers)
            .map_err(|error| anyhow::anyhow!("MODEL_PROVIDERS: {error}"))?;
        if self.provider_timeout_seconds == 0 {
            anyhow::bail!("PROVIDER_TIMEOUT_SECONDS is 0; set the seconds a request may take");
        }
        if self.provider_breaker_failures == 0 || self.provider_breaker_open_seconds == 0 {
            anyhow::bail!(
                "PROVIDER_BREAKER_FAILURES and PROVIDER_BREAKER_OPEN_SECONDS must be at least 1 \
                 (got {} and {})",
                self.provider_breaker_failures,
                self.provider_breaker_open_seconds
            );
        }
        let request_timeout = Duration::from_secs(self.provider_timeout_seconds);
        let limits = self.http_limits();
        let prices = PriceTable::parse(&self.provider_prices)
            .map_err(|error| anyhow::anyhow!("PROVIDER_PRICES: {error}"))?;

        let openai = chain
            .contains(&ProviderKind::OpenAiCompatible)
            .then(|| self.openai_config(limits))
            .transpose()?;
        let anthropic = chain
            .contains(&ProviderKind::Anthropic)
            .then(|| self.anthropic_config(limits))
            .transpose()?;
        Ok(ProviderSettings {
            chain,
            openai,
            anthropic,
            breaker: BreakerSettings {
                failure_threshold: self.provider_breaker_failures,
                failure_window: Duration::from_secs(self.provider_breaker_window_seconds.max(1)),
                open_for: Duration::from_secs(self.provider_breaker_open_seconds),
                // Two requests (the second a repair) at the timeout, and a margin.
                probe_lease: request_timeout * 2 + Duration::from_secs(30),
            },
            rate_limits: RateLimits {
                requests_per_minute: self.provider_requests_per_minute,
                tokens_per_minute: self.provider_tokens_per_minute,
            },
            monthly_token_budget: self.tenant_monthly_token_budget,
            prices,
        })
    }

    /// Connection limits of every provider request, from PROVIDER_TIMEOUT_SECONDS.
    fn http_limits(&self) -> HttpLimits {
        let request_timeout = Duration::from_secs(self.provider_timeout_seconds.max(1));
        HttpLimits {
            connect_timeout: HttpLimits::default().connect_timeout.min(request_timeout),
            request_timeout,
            ..HttpLimits::default()
        }
    }

    /// Builds the OpenAI-compatible client that computes knowledge embeddings when
    /// EMBEDDING_BACKEND is openai, or returns an error naming the missing variable.
    pub fn embedding_provider(&self) -> anyhow::Result<ProviderEmbedding> {
        for (variable, value) in [
            ("OPENAI_BASE_URL", &self.openai_base_url),
            ("OPENAI_MODEL", &self.openai_model),
        ] {
            if value.as_deref().is_none_or(|value| value.trim().is_empty()) {
                anyhow::bail!(
                    "EMBEDDING_BACKEND=openai needs {variable} of the OpenAI-compatible server; \
                     set it, or set EMBEDDING_BACKEND=local"
                );
            }
        }
        let config = self.openai_config(self.http_limits())?;
        let Some(model_id) = config.embedding_model.clone() else {
            anyhow::bail!(
                "EMBEDDING_BACKEND=openai needs OPENAI_EMBEDDING_MODEL, the embedding model of \
                 the OpenAI-compatible server (one that returns 384 numbers per text); set it, \
                 or set EMBEDDING_BACKEND=local"
            );
        };
        let provider = OpenAiProvider::new(config)
            .map_err(|error| anyhow::anyhow!("the embedding provider is invalid: {error}"))?;
        Ok(ProviderEmbedding {
            provider: Arc::new(provider),
            model_id,
        })
    }

    fn openai_config(&self, limits: HttpLimits) -> anyhow::Result<OpenAiConfig> {
        let base_url = required_text("OPENAI_BASE_URL", self.openai_base_url.as_deref(), "openai")?;
        let base_url = parse_base_url(&base_url)
            .map_err(|error| anyhow::anyhow!("OPENAI_BASE_URL: {error}"))?;
        let model = required_text("OPENAI_MODEL", self.openai_model.as_deref(), "openai")?;
        let dialect = match self.openai_schema_dialect.trim() {
            "json_schema" => SchemaDialect::JsonSchema,
            "json_object_schema" => SchemaDialect::JsonObjectSchema,
            other => anyhow::bail!(
                "OPENAI_SCHEMA_DIALECT {other:?} is unknown; use json_schema or json_object_schema"
            ),
        };
        let mut config = OpenAiConfig::new(base_url, model);
        config.api_key = self
            .openai_api_key
            .clone()
            .filter(|key| !key.expose().is_empty());
        config.embedding_model = self
            .openai_embedding_model
            .as_deref()
            .map(str::trim)
            .filter(|model| !model.is_empty())
            .map(str::to_string);
        if let Some(dimensions) = self.openai_embedding_dimensions {
            let stored = backend::knowledge::embed::EMBEDDING_DIMENSIONS;
            if dimensions as usize != stored {
                anyhow::bail!(
                    "OPENAI_EMBEDDING_DIMENSIONS must be {stored}, the vector length the \
                     knowledge base stores (got {dimensions}); leave it unset for a model that \
                     returns {stored} numbers by itself"
                );
            }
        }
        config.embedding_dimensions = self.openai_embedding_dimensions;
        config.dialect = dialect;
        config.limits = limits;
        config.key_header = KeyHeader::parse(&self.openai_key_header)
            .map_err(|error| anyhow::anyhow!("OPENAI_KEY_HEADER: {error}"))?;
        let version = self.openai_api_version.trim();
        config.api_version = (!version.is_empty()).then(|| version.to_string());
        Ok(config)
    }

    fn anthropic_config(&self, limits: HttpLimits) -> anyhow::Result<AnthropicConfig> {
        let base_url = required_text(
            "ANTHROPIC_BASE_URL",
            self.anthropic_base_url.as_deref(),
            "anthropic",
        )?;
        let base_url = parse_base_url(&base_url)
            .map_err(|error| anyhow::anyhow!("ANTHROPIC_BASE_URL: {error}"))?;
        let model = required_text(
            "ANTHROPIC_MODEL",
            self.anthropic_model.as_deref(),
            "anthropic",
        )?;
        let key = self
            .anthropic_api_key
            .clone()
            .filter(|key| !key.expose().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "MODEL_PROVIDERS lists anthropic, but ANTHROPIC_API_KEY is unset; set the key \
                     or remove anthropic from MODEL_PROVIDERS"
                )
            })?;
        let mut config = AnthropicConfig::new(base_url, key, model);
        config.limits = limits;
        Ok(config)
    }
}

fn required_text(variable: &str, value: Option<&str>, provider: &str) -> anyhow::Result<String> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "MODEL_PROVIDERS lists {provider}, but {variable} is unset; set it or remove \
                 {provider} from MODEL_PROVIDERS"
            )
        })
}

/// Time limits of conversations, which the start of a conversation and the upkeep enforce.
#[derive(Debug, Clone, Args)]
pub struct ConversationArgs {
    /// Minutes without activity after which an open conversation is cancelled as stale.
    #[arg(long, env = "CONVERSATION_IDLE_MINUTES", default_value_t = 30)]
    pub conversation_idle_minutes: u64,

    /// Minutes a recommendation run may take before its conversation moves to error.
    #[arg(long, env = "CONVERSATION_GENERATING_MINUTES", default_value_t = 60)]
    pub conversation_generating_minutes: u64,
}

impl ConversationArgs {
    /// Checks the limits and converts them; zero would cancel every conversation at once.
    pub fn settings(&self) -> anyhow::Result<ConversationSettings> {
        for (name, value) in [
            ("CONVERSATION_IDLE_MINUTES", self.conversation_idle_minutes),
            (
                "CONVERSATION_GENERATING_MINUTES",
                self.conversation_generating_minutes,
            ),
        ] {
            if value == 0 {
                anyhow::bail!("{name}=0 is invalid: set it to 1 or more minutes");
            }
        }
        Ok(ConversationSettings {
            idle_timeout: Duration::from_secs(self.conversation_idle_minutes * 60),
            generating_timeout: Duration::from_secs(self.conversation_generating_minutes * 60),
        })
    }
}

/// Options of the knowledge base: fetch limits, refresh, the signed webhook and embeddings.
#[derive(Debug, Clone, Args)]
pub struct KnowledgeArgs {
    /// Largest upload or fetched document, in bytes.
    #[arg(long, env = "KNOWLEDGE_MAX_DOCUMENT_BYTES", default_value_t = backend::knowledge::settings::DEFAULT_MAX_DOCUMENT_BYTES)]
    pub knowledge_max_document_bytes: usize,

    /// Accept http:// source URLs as well as https://; for development only.
    #[arg(long, env = "KNOWLEDGE_ALLOW_HTTP", default_value_t = false)]
    pub knowledge_allow_http: bool,

    /// Comma-separated hosts that sources may come from (subdomains included); empty allows
    /// any public host.
    #[arg(long, env = "KNOWLEDGE_ALLOWED_HOSTS", default_value = "")]
    pub knowledge_allowed_hosts: String,

    /// Comma-separated ports that source URLs may use besides 443 (and 80 with http).
    #[arg(long, env = "KNOWLEDGE_EXTRA_PORTS", default_value = "")]
    pub knowledge_extra_ports: String,

    /// Comma-separated loopback addresses with ports that source URLs may reach (the same
    /// setting as the workers'); for development and tests only.
    #[arg(
        long = "knowledge-loopback-exceptions",
        env = "OUTBOUND_LOOPBACK_EXCEPTIONS",
        default_value = ""
    )]
    pub knowledge_loopback_exceptions: String,

    /// Seconds allowed for one fetch, redirects included.
    #[arg(long, env = "KNOWLEDGE_FETCH_TIMEOUT_SECONDS", default_value_t = 30)]
    pub knowledge_fetch_timeout_seconds: u64,

    /// Hours between re-fetches of URL sources.
    #[arg(long, env = "KNOWLEDGE_REFRESH_HOURS", default_value_t = 168)]
    pub knowledge_refresh_hours: u64,

    /// Comma-separated webhook secrets (the current one, then the previous one while
    /// rotating); empty turns the knowledge webhook off.
    #[arg(
        long,
        env = "KNOWLEDGE_WEBHOOK_SECRETS",
        default_value = "",
        hide_env_values = true
    )]
    pub knowledge_webhook_secrets: String,

    /// Seconds a webhook timestamp may differ from the server's clock.
    #[arg(
        long,
        env = "KNOWLEDGE_WEBHOOK_TOLERANCE_SECONDS",
        default_value_t = 300
    )]
    pub knowledge_webhook_tolerance_seconds: u64,

    /// Embedding backend: local (the bundled model) or openai.
    #[arg(long, env = "EMBEDDING_BACKEND", default_value = "local")]
    pub embedding_backend: String,

    /// Folder with model.safetensors, tokenizer.json and config.json of all-MiniLM-L6-v2;
    /// the repository's .data/models/all-MiniLM-L6-v2 when empty.
    #[arg(long, env = "EMBEDDING_MODEL_DIR", default_value = "")]
    pub embedding_model_dir: String,

    /// Texts per embedding call.
    #[arg(long, env = "EMBEDDING_BATCH_SIZE", default_value_t = 32)]
    pub embedding_batch_size: usize,
}

impl KnowledgeArgs {
    /// Builds the knowledge settings these options describe, or returns an error naming the
    /// invalid option.
    pub fn settings(&self) -> anyhow::Result<KnowledgeSettings> {
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect()
        };
        let extra_ports = list(&self.knowledge_extra_ports)
            .iter()
            .map(|port| {
                port.parse::<u16>()
                    .ok()
                    .filter(|port| *port > 0)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "KNOWLEDGE_EXTRA_PORTS: {port:?} is not a port number from 1 to 65535"
                        )
                    })
            })
            .collect::<anyhow::Result<Vec<u16>>>()?;
        let secrets = list(&self.knowledge_webhook_secrets);
        if secrets.len() > 2 {
            anyhow::bail!(
                "KNOWLEDGE_WEBHOOK_SECRETS lists {} secrets; give at most two (current, previous)",
                secrets.len()
            );
        }
        if self.knowledge_max_document_bytes == 0 {
            anyhow::bail!("KNOWLEDGE_MAX_DOCUMENT_BYTES must be at least 1");
        }
        let hosts = list(&self.knowledge_allowed_hosts);
        let embedding = EmbeddingSettings::from_lookup(|name| match name {
            "EMBEDDING_BACKEND" => Some(self.embedding_backend.clone()),
            "EMBEDDING_MODEL_DIR" => Some(self.embedding_model_dir.clone()),
            "EMBEDDING_BATCH_SIZE" => Some(self.embedding_batch_size.to_string()),
            _ => None,
        })?;
        Ok(KnowledgeSettings {
            max_document_bytes: self.knowledge_max_document_bytes,
            allow_http: self.knowledge_allow_http,
            allowed_hosts: (!hosts.is_empty()).then_some(hosts),
            extra_ports,
            loopback_exceptions: parse_loopback_exceptions(&self.knowledge_loopback_exceptions)
                .map_err(|error| anyhow::anyhow!("OUTBOUND_LOOPBACK_EXCEPTIONS: {error}"))?,
            fetch_timeout: Duration::from_secs(self.knowledge_fetch_timeout_seconds.max(1)),
            refresh_interval: Duration::from_secs(self.knowledge_refresh_hours.max(1) * 3600),
            webhook_secrets: secrets.into_iter().map(Secret::new).collect(),
            webhook_tolerance: Duration::from_secs(self.knowledge_webhook_tolerance_seconds),
            embedding,
        })
    }
}
