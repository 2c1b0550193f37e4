//! Clients for the model providers that write and check recommendations: OpenAI-compatible chat
//! completions, Anthropic Messages and the deterministic `offline` provider.
//!
//! Every provider implements [`Provider`]. A chat call asks for one JSON value that matches a
//! JSON schema, and [`output::with_repair`] validates that value and sends the request once
//! more with the validation errors. Failures are [`ProviderError`]s, whose
//! [`ProviderError::class`] decides how the job that made the call is retried. Base URLs and
//! keys come from configuration only, never from a request, and keys are kept in [`Secret`] so
//! that they stay out of messages and logs.

pub mod anthropic;
pub mod breaker;
pub mod calls;
pub mod gateway;
pub mod limits;
pub mod offline;
pub mod openai;
pub mod output;
pub mod overview;
pub mod prompts;
pub mod screening;
pub mod settings;
mod transport;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::jobs::{ErrorClass, JobError};

pub use anthropic::{AnthropicConfig, AnthropicProvider, ANTHROPIC_VERSION};
pub use gateway::{Answer, EmbedAnswer, Gateway, GatewayError, ModelAnswer, OfflineReason};
pub use offline::{OfflineProvider, OFFLINE_EMBEDDING_DIMENSIONS};
pub use openai::{KeyHeader, OpenAiConfig, OpenAiProvider, SchemaDialect};

/// Default for [`ChatRequest::max_tokens`].
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Default for [`ChatRequest::temperature`]: low, because the output is configuration.
pub const DEFAULT_TEMPERATURE: f32 = 0.2;

/// The kind of a provider, as stored with each recorded model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// A server speaking OpenAI's chat completions API: OpenAI, Azure OpenAI, Ollama, vLLM,
    /// llama.cpp.
    OpenAiCompatible,
    /// Anthropic's Messages API.
    Anthropic,
    /// The embedded deterministic provider.
    Offline,
}

impl ProviderKind {
    /// Returns the stable name used in settings, records and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAiCompatible => "openai_compatible",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Offline => "offline",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential such as an API key. `Debug` and `Display` print `[redacted]`, and there is no
/// `Serialize`, so the value leaves this type only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential read from the environment or a file.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the credential, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Timeouts and size limits of the HTTP calls to one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Maximum time to open the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Maximum time for the whole call, from connecting until the response body is read.
    pub request_timeout: Duration,
    /// Maximum size of a response body in bytes; a larger body fails the call.
    pub max_response_bytes: usize,
}

impl Default for HttpLimits {
    /// 10 s to connect and 120 s per call, because a long structured output from a large model
    /// takes tens of seconds; 16 MiB per body, enough for a batch of embeddings.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            max_response_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The author of a message in the conversation sent with a chat request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Text from Siteline on behalf of the user: the prompt, data blocks, repair requests.
    User,
    /// An earlier output of the model.
    Assistant,
}

/// One turn of the conversation after the system prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// The author of the turn.
    pub role: Role,
    /// The text of the turn.
    pub content: String,
}

impl ChatMessage {
    /// Creates a user turn.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// Creates an assistant turn.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A request for one JSON value that matches [`ChatRequest::schema`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    /// The system prompt: instructions that the untrusted data in the messages cannot override.
    pub system: String,
    /// The conversation, starting with a user turn and alternating user and assistant.
    pub messages: Vec<ChatMessage>,
    /// Name of the schema, sent as the OpenAI schema name or the Anthropic tool name. Both APIs
    /// accept 1 to 64 ASCII letters, digits, `_` and `-`.
    pub schema_name: String,
    /// JSON schema of the expected output. Its top level must be an object schema, because
    /// Anthropic tool inputs and OpenAI strict schemas are objects.
    pub schema: Value,
    /// Maximum number of tokens the model may generate.
    pub max_tokens: u32,
    /// Sampling temperature in [0, 1], the range that both OpenAI and Anthropic accept.
    pub temperature: f32,
    /// Asks OpenAI-compatible servers to enforce the schema exactly (`strict: true`). OpenAI then
    /// requires `additionalProperties: false` and every property listed in `required`.
    pub strict_schema: bool,
}

impl ChatRequest {
    /// Creates a request with one user turn and the default token limit and temperature.
    pub fn new(
        system: impl Into<String>,
        user: impl Into<String>,
        schema_name: impl Into<String>,
        schema: Value,
    ) -> Self {
        Self {
            system: system.into(),
            messages: vec![ChatMessage::user(user)],
            schema_name: schema_name.into(),
            schema,
            max_tokens: DEFAULT_MAX_TOKENS,
            temperature: DEFAULT_TEMPERATURE,
            strict_schema: true,
        }
    }

    /// Returns the hex SHA-256 of the system prompt, messages and schema, recorded with each
    /// model call so that identical prompts can be found without storing their text.
    pub fn prompt_hash(&self) -> String {
        let canonical = json!({
            "system": self.system,
            "messages": self.messages,
            "schema_name": self.schema_name,
            "schema": self.schema,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Checks the request before it is sent, so a caller's mistake fails as permanent instead of
    /// as a provider's 400 that differs between providers.
    pub fn check(&self) -> Result<(), ProviderError> {
        let invalid = |detail: String| Err(ProviderError::InvalidRequest { detail });
        let name_ok = (1..=64).contains(&self.schema_name.len())
            && self
                .schema_name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
        if !name_ok {
            return invalid(format!(
                "schema name {:?} is invalid; use 1 to 64 ASCII letters, digits, '_' or '-'",
                self.schema_name
            ));
        }
        if self.schema.get("type").and_then(Value::as_str) != Some("object") {
            return invalid(format!(
                "schema {:?} must have \"type\": \"object\" at its top level",
                self.schema_name
            ));
        }
        match self.messages.first() {
            Some(first) if first.role == Role::User => {}
            Some(_) => return invalid("the first message must be a user message".to_string()),
            None => return invalid("the request has no messages; add a user message".to_string()),
        }
        if self.max_tokens == 0 {
            return invalid("max_tokens is 0; use a positive token limit".to_string());
        }
        if !(0.0..=1.0).contains(&self.temperature) {
            return invalid(format!(
                "temperature {} is outside [0, 1]",
                self.temperature
            ));
        }
        Ok(())
    }
}

/// A structured output and the facts recorded about the call.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The JSON value the model produced, not yet validated against the schema.
    pub value: Value,
    /// The model that produced the output, as the provider reported it.
    pub model: String,
    /// Prompt tokens billed, 0 when the provider did not report usage.
    pub input_tokens: u32,
    /// Generated tokens billed, 0 when the provider did not report usage.
    pub output_tokens: u32,
    /// Time from sending the request until the response body was read.
    pub latency: Duration,
}

/// Embedding vectors, one per input text and in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// The vectors, all of the same length.
    pub vectors: Vec<Vec<f32>>,
    /// The embedding model, as the provider reported it.
    pub model: String,
    /// Input tokens billed, 0 when the provider did not report usage.
    pub input_tokens: u32,
    /// Time from sending the request until the response body was read.
    pub latency: Duration,
}

/// A model provider: structured chat and embeddings.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Returns the kind of provider, for records and circuit breakers.
    fn kind(&self) -> ProviderKind;

    /// Returns the configured chat model.
    fn chat_model(&self) -> &str;

    /// Returns the configured embedding model, or `None` when [`Provider::embed`] is unsupported.
    fn embedding_model(&self) -> Option<&str> {
        None
    }

    /// Sends `request` and returns the JSON value that the model produced.
    async fn chat_structured(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError>;

    /// Returns one embedding vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Embeddings, ProviderError>;
}

/// Why a provider call failed. [`ProviderError::class`] maps each case onto the job error
/// classes. Messages do not contain the configured API key, because the key is cut out of all
/// text from the provider, which also passes through [`crate::jobs::sanitize::sanitize_text`].
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// HTTP 429. `retry_after` is the server's `Retry-After`, when it sent a valid one.
    #[error("request to {endpoint} was rate limited (HTTP 429){}: {detail}", retry_after_hint(.retry_after))]
    RateLimited {
        endpoint: String,
        retry_after: Option<Duration>,
        detail: String,
    },

    /// HTTP 5xx, or 408 Request Timeout: the provider failed and may recover.
    #[error("request to {endpoint} failed with HTTP status {status}: {detail}")]
    ServerError {
        endpoint: String,
        status: u16,
        detail: String,
    },

    /// The call did not finish within the configured `request_timeout`.
    #[error("request to {endpoint} timed out after {} ms; raise request_timeout if the model needs longer", .after.as_millis())]
    Timeout { endpoint: String, after: Duration },

    /// No connection could be opened.
    #[error("could not connect to {endpoint}: {detail}; check the provider's base URL and that its server is running")]
    Connect { endpoint: String, detail: String },

    /// The connection broke while the request or response was in transit.
    #[error("request to {endpoint} failed in transit: {detail}")]
    Transport { endpoint: String, detail: String },

    /// A 4xx other than 408 and 429, or an unexpected status: retrying the same request cannot
    /// help.
    #[error("request to {endpoint} was rejected with HTTP status {status}: {detail}; {}", rejection_hint(*.status))]
    Rejected {
        endpoint: String,
        status: u16,
        detail: String,
    },

    /// The response did not follow the provider's wire format, for example a truncated body.
    #[error("response from {endpoint} is malformed: {detail}")]
    MalformedResponse { endpoint: String, detail: String },

    /// The model's output is not valid JSON for the schema. `output` contains the start of the raw
    /// text when there was text, so that a repair request can show it to the model.
    #[error("output of {origin} is invalid: {detail}")]
    MalformedOutput {
        origin: String,
        detail: String,
        output: Option<String>,
    },

    /// The request breaks a rule checked before sending, such as a non-object schema.
    #[error("invalid chat request: {detail}")]
    InvalidRequest { detail: String },

    /// The provider cannot do what was asked, such as embeddings on Anthropic.
    #[error("{detail}")]
    Unsupported { detail: String },

    /// The provider's configuration is unusable, such as a base URL with a query.
    #[error("invalid {provider} provider configuration: {detail}")]
    InvalidConfig {
        provider: ProviderKind,
        detail: String,
    },
}

impl ProviderError {
    /// Returns the job error class that decides retries: 5xx, timeouts and invalid output are
    /// `model_provider`, 429 is `rate_limited`, failed connections are `network`, and everything
    /// a retry cannot fix is `permanent`.
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderError::RateLimited { .. } => ErrorClass::RateLimited,
            ProviderError::ServerError { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::MalformedResponse { .. }
            | ProviderError::MalformedOutput { .. } => ErrorClass::ModelProvider,
            ProviderError::Connect { .. } | ProviderError::Transport { .. } => ErrorClass::Network,
            ProviderError::Rejected { .. }
            | ProviderError::InvalidRequest { .. }
            | ProviderError::Unsupported { .. }
            | ProviderError::InvalidConfig { .. } => ErrorClass::Permanent,
        }
    }

    /// Returns the wait that the provider asked for, from a 429's `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Converts into the job error that the job runner retries or dead-letters.
    pub fn into_job_error(self) -> JobError {
        JobError {
            class: self.class(),
            chain: vec![self.to_string()],
            retry_after: self.retry_after(),
        }
    }
}

impl From<ProviderError> for JobError {
    fn from(error: ProviderError) -> Self {
        error.into_job_error()
    }
}

fn retry_after_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(", retry after {} s", wait.as_secs()),
        None => String::new(),
    }
}

fn rejection_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => "check the provider's API key and its permissions",
        404 => "check the provider's base URL and model name",
        300..=399 => "redirects are not followed, so configure the final base URL",
        _ => {
            "fix the request or the provider configuration, because a retry sends the same request"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_and_display_redact() {
        let secret = Secret::new("sk-very-secret-value");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(secret.to_string(), "[redacted]");
        assert_eq!(secret.expose(), "sk-very-secret-value");
    }

    #[test]
    fn config_debug_hides_key() {
        let config = OpenAiConfig::new(
            url::Url::parse("http://127.0.0.1:9/v1").unwrap(),
            "gpt-test",
        )
        .with_api_key(Secret::new("sk-very-secret-value"));
        let text = format!("{config:?}");
        assert!(!text.contains("sk-very-secret-value"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn error_classes_follow_retry_table() {
        let endpoint = || "http://127.0.0.1:9/v1/chat/completions".to_string();
        let cases = [
            (
                ProviderError::RateLimited {
                    endpoint: endpoint(),
                    retry_after: Some(Duration::from_secs(7)),
                    detail: String::new(),
                },
                ErrorClass::RateLimited,
            ),
            (
                ProviderError::ServerError {
                    endpoint: endpoint(),
                    status: 503,
                    detail: String::new(),
                },
                ErrorClass::ModelProvider,
            ),
            (
                ProviderError::Timeout {
                    endpoint: endpoint(),
                    after: Duration::from_secs(1),
                },
                ErrorClass::ModelProvider,
            ),
            (
                ProviderError::Connect {
                    endpoint: endpoint(),
                    detail: String::new(),
                },
                ErrorClass::Network,
            ),
            (
                ProviderError::Rejected {
                    endpoint: endpoint(),
                    status: 401,
                    detail: String::new(),
                },
                ErrorClass::Permanent,
            ),
            (
                ProviderError::MalformedOutput {
                    origin: "model".to_string(),
                    detail: String::new(),
                    output: None,
                },
                ErrorClass::ModelProvider,
            ),
            (
                ProviderError::Unsupported {
                    detail: String::new(),
                },
                ErrorClass::Permanent,
            ),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class, "{error}");
        }
    }

    #[test]
    fn job_error_carries_retry_after() {
        let error = ProviderError::RateLimited {
            endpoint: "http://127.0.0.1:9/v1/messages".to_string(),
            retry_after: Some(Duration::from_secs(12)),
            detail: "slow down".to_string(),
        };
        let job_error = error.into_job_error();
        assert_eq!(job_error.class, ErrorClass::RateLimited);
        assert_eq!(job_error.retry_after, Some(Duration::from_secs(12)));
        assert!(job_error.message().contains("retry after 12 s"));
    }

    #[test]
    fn request_check_rejects_bad_schema_name() {
        let mut request = ChatRequest::new("s", "u", "maker output", json!({"type": "object"}));
        assert!(matches!(
            request.check(),
            Err(ProviderError::InvalidRequest { .. })
        ));
        request.schema_name = "maker_output".to_string();
        assert!(request.check().is_ok());
    }

    #[test]
    fn request_check_rejects_non_object_schema() {
        let request = ChatRequest::new("s", "u", "list", json!({"type": "array"}));
        let error = request.check().unwrap_err();
        assert_eq!(error.class(), ErrorClass::Permanent);
        assert!(error.to_string().contains("\"type\": \"object\""));
    }

    #[test]
    fn prompt_hash_changes_with_messages() {
        let schema = json!({"type": "object"});
        let first = ChatRequest::new("s", "one", "out", schema.clone());
        let second = ChatRequest::new("s", "two", "out", schema);
        assert_eq!(first.prompt_hash().len(), 64);
        assert_eq!(first.prompt_hash(), first.clone().prompt_hash());
        assert_ne!(first.prompt_hash(), second.prompt_hash());
    }
}
