//! A client for Anthropic's Messages API. Structured output goes through one tool whose input
//! schema is the requested schema, and `tool_choice` forces the model to call it.

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::transport::{check_base_url, endpoint, Transport};
use super::{
    ChatRequest, ChatResponse, Embeddings, HttpLimits, Provider, ProviderError, ProviderKind,
    Secret,
};

/// The `anthropic-version` header value, the API version whose request and response shapes
/// this client follows.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Settings of the Anthropic provider.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// The API root that `v1/messages` is appended to, such as `https://host`. It comes from
    /// settings only, never from a request.
    pub base_url: Url,
    /// Sent as the `x-api-key` header.
    pub api_key: Secret,
    /// The model for messages.
    pub model: String,
    /// Timeouts and the response size limit.
    pub limits: HttpLimits,
}

impl AnthropicConfig {
    /// Creates settings with default limits.
    pub fn new(base_url: Url, api_key: Secret, model: impl Into<String>) -> Self {
        Self {
            base_url,
            api_key,
            model: model.into(),
            limits: HttpLimits::default(),
        }
    }
}

/// The Anthropic provider.
pub struct AnthropicProvider {
    config: AnthropicConfig,
    transport: Transport,
    messages_url: Url,
}

impl std::fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AnthropicProvider {
    /// Checks the settings and builds the HTTP client.
    pub fn new(config: AnthropicConfig) -> Result<Self, ProviderError> {
        let kind = ProviderKind::Anthropic;
        let invalid = |detail: &str| ProviderError::InvalidConfig {
            provider: kind,
            detail: detail.to_string(),
        };
        check_base_url(kind, &config.base_url)?;
        if config.model.trim().is_empty() {
            return Err(invalid("the model is empty; set an Anthropic model name"));
        }
        if config.api_key.expose().is_empty() {
            return Err(invalid("the API key is empty; set the Anthropic API key"));
        }

        let mut key = HeaderValue::from_str(config.api_key.expose()).map_err(|_| {
            invalid(
                "the API key contains characters that an HTTP header cannot carry; copy the key \
                 again without spaces or line breaks",
            )
        })?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("x-api-key"), key);
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        let transport = Transport::new(kind, config.limits, headers, Some(config.api_key.clone()))?;
        Ok(Self {
            messages_url: endpoint(&config.base_url, "v1/messages"),
            config,
            transport,
        })
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn chat_model(&self) -> &str {
        &self.config.model
    }

    async fn chat_structured(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        request.check()?;
        let body = messages_body(&self.config.model, request);
        let (value, latency) = self.transport.post_json(&self.messages_url, &body).await?;

        let message: Message =
            serde_json::from_value(value).map_err(|error| ProviderError::MalformedResponse {
                endpoint: self.messages_url.to_string(),
                detail: format!("the body is not a message ({error})"),
            })?;
        let origin = format!("model {} at {}", self.config.model, self.messages_url);
        let malformed = |detail: String| ProviderError::MalformedOutput {
            origin: origin.clone(),
            detail,
            output: None,
        };
        if message.stop_reason.as_deref() == Some("max_tokens") {
            return Err(malformed(format!(
                "the output was cut off at max_tokens ({}); raise max_tokens",
                request.max_tokens
            )));
        }
        let input = message
            .content
            .iter()
            .find(|block| {
                block.kind == "tool_use" && block.name.as_deref() == Some(&request.schema_name)
            })
            .and_then(|block| block.input.clone())
            .ok_or_else(|| {
                let kinds: Vec<&str> = message.content.iter().map(|b| b.kind.as_str()).collect();
                malformed(format!(
                    "the reply has no tool_use block for tool {:?}; its blocks are [{}]",
                    request.schema_name,
                    kinds.join(", ")
                ))
            })?;
        Ok(ChatResponse {
            value: input,
            model: message.model.unwrap_or_else(|| self.config.model.clone()),
            input_tokens: message.usage.input_tokens,
            output_tokens: message.usage.output_tokens,
            latency,
        })
    }

    async fn embed(&self, _texts: &[String]) -> Result<Embeddings, ProviderError> {
        Err(ProviderError::Unsupported {
            detail: "Anthropic has no embeddings endpoint; configure an OpenAI-compatible \
                     embedding model or use the offline embeddings"
                .to_string(),
        })
    }
}

/// Builds the Messages request body with one forced tool that carries the schema.
fn messages_body(model: &str, request: &ChatRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|message| json!({ "role": message.role, "content": message.content }))
        .collect();
    json!({
        "model": model,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "system": request.system,
        "messages": messages,
        "tools": [{
            "name": request.schema_name,
            "description": "Records the structured output. Call it exactly once with the \
                            complete output as its input.",
            "input_schema": request.schema,
        }],
        "tool_choice": { "type": "tool", "name": request.schema_name },
    })
}

#[derive(Deserialize)]
struct Message {
    model: Option<String>,
    content: Vec<ContentBlock>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    input: Option<Value>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_forces_one_tool() {
        let request = ChatRequest::new(
            "You check proposals.",
            "Check these.",
            "checker_output",
            json!({"type": "object"}),
        );
        let body = messages_body("claude-test", &request);
        assert_eq!(body["model"], "claude-test");
        assert_eq!(body["system"], "You check proposals.");
        assert_eq!(body["messages"][0]["role"], "user");
        assert_eq!(body["messages"][0]["content"], "Check these.");
        assert_eq!(body["tools"].as_array().map(Vec::len), Some(1));
        assert_eq!(body["tools"][0]["name"], "checker_output");
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(body["tool_choice"]["type"], "tool");
        assert_eq!(body["tool_choice"]["name"], "checker_output");
        assert_eq!(body["max_tokens"], request.max_tokens);
    }

    #[test]
    fn empty_key_rejected() {
        let config = AnthropicConfig::new(
            Url::parse("http://127.0.0.1:9").unwrap(),
            Secret::new(""),
            "claude-test",
        );
        let error = AnthropicProvider::new(config).unwrap_err();
        assert!(error.to_string().contains("API key is empty"), "{error}");
    }
}
