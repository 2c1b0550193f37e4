//! A client for servers that speak OpenAI's chat completions and embeddings APIs: OpenAI,
//! Azure OpenAI, Ollama, vLLM and llama.cpp servers.

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::transport::{check_base_url, endpoint, shorten, Transport};
use super::{
    ChatRequest, ChatResponse, Embeddings, HttpLimits, Provider, ProviderError, ProviderKind,
    Secret,
};

/// Maximum length, in characters, of model output kept in a [`ProviderError::MalformedOutput`].
const MAX_OUTPUT_CHARS: usize = 4000;

/// The form in which a server accepts the JSON schema of the expected output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaDialect {
    /// `response_format: {type: "json_schema", json_schema: {name, schema, strict}}`, as OpenAI
    /// and vLLM take it.
    #[default]
    JsonSchema,
    /// `response_format: {type: "json_object", schema}`, as llama-cpp-python's server 0.3 takes
    /// it; that server rejects the `json_schema` type.
    JsonObjectSchema,
}

/// The header that carries the API key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyHeader {
    /// `Authorization: Bearer <key>`, as OpenAI, vLLM, Ollama and llama.cpp servers take it.
    #[default]
    Bearer,
    /// `api-key: <key>`, as Azure OpenAI takes a resource key.
    ApiKey,
}

impl KeyHeader {
    /// Parses the setting's value: `authorization` or `api-key`; the error names the value.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "authorization" | "bearer" => Ok(KeyHeader::Bearer),
            "api-key" => Ok(KeyHeader::ApiKey),
            other => Err(format!(
                "{other:?} is not a key header; use authorization (Bearer) or api-key (Azure \
                 OpenAI)"
            )),
        }
    }
}

/// Settings of an OpenAI-compatible provider. For Azure OpenAI, set the base URL to the
/// deployment (`https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT`), `api_version`
/// and the `api-key` header.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The API root that `chat/completions` and `embeddings` are appended to, such as
    /// `https://host/v1`. It comes from settings only, never from a request.
    pub base_url: Url,
    /// Sent in `key_header`; local servers such as Ollama need none.
    pub api_key: Option<Secret>,
    /// The header that carries the key.
    pub key_header: KeyHeader,
    /// Sent as the `api-version` query parameter of every request, as Azure OpenAI needs.
    pub api_version: Option<String>,
    /// The model for chat completions.
    pub chat_model: String,
    /// The model for embeddings; without one, [`Provider::embed`] fails as unsupported.
    pub embedding_model: Option<String>,
    /// Vector length sent as `dimensions` in embedding requests, for models that can shorten
    /// their vectors (OpenAI's text-embedding-3 family). A server without the field may reject it.
    pub embedding_dimensions: Option<u32>,
    /// The form in which the server accepts the output schema.
    pub dialect: SchemaDialect,
    /// Timeouts and the response size limit.
    pub limits: HttpLimits,
}

impl OpenAiConfig {
    /// Creates settings without a key or embedding model, with the `json_schema` dialect.
    pub fn new(base_url: Url, chat_model: impl Into<String>) -> Self {
        Self {
            base_url,
            api_key: None,
            key_header: KeyHeader::default(),
            api_version: None,
            chat_model: chat_model.into(),
            embedding_model: None,
            embedding_dimensions: None,
            dialect: SchemaDialect::default(),
            limits: HttpLimits::default(),
        }
    }

    /// Sets the API key.
    pub fn with_api_key(mut self, api_key: Secret) -> Self {
        self.api_key = Some(api_key);
        self
    }
}

/// The OpenAI-compatible provider.
pub struct OpenAiProvider {
    config: OpenAiConfig,
    transport: Transport,
    chat_url: Url,
    embeddings_url: Url,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    /// Checks the settings and builds the HTTP client.
    pub fn new(config: OpenAiConfig) -> Result<Self, ProviderError> {
        let kind = ProviderKind::OpenAiCompatible;
        check_base_url(kind, &config.base_url)?;
        if config.chat_model.trim().is_empty() {
            return Err(ProviderError::InvalidConfig {
                provider: kind,
                detail: "the chat model is empty; set the model name the server expects"
                    .to_string(),
            });
        }

        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            let (name, text) = match config.key_header {
                KeyHeader::Bearer => (AUTHORIZATION, format!("Bearer {}", key.expose())),
                KeyHeader::ApiKey => (HeaderName::from_static("api-key"), key.expose().to_string()),
            };
            let mut value =
                HeaderValue::from_str(&text).map_err(|_| ProviderError::InvalidConfig {
                    provider: kind,
                    detail: "the API key contains characters that an HTTP header cannot carry; \
                             copy the key again without spaces or line breaks"
                        .to_string(),
                })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let version = match config.api_version.as_deref().map(str::trim) {
            Some("") | None => None,
            Some(version)
                if version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
            {
                Some(version)
            }
            Some(version) => {
                return Err(ProviderError::InvalidConfig {
                    provider: kind,
                    detail: format!(
                        "the API version {version:?} has characters other than letters, digits, \
                         '-' and '.'; write it as the server documents it, such as 2024-10-21"
                    ),
                })
            }
        };
        let url = |path: &str| {
            let mut url = endpoint(&config.base_url, path);
            if let Some(version) = version {
                url.query_pairs_mut().append_pair("api-version", version);
            }
            url
        };
        let transport = Transport::new(kind, config.limits, headers, config.api_key.clone())?;
        Ok(Self {
            chat_url: url("chat/completions"),
            embeddings_url: url("embeddings"),
            config,
            transport,
        })
    }

    fn origin(&self) -> String {
        format!("model {} at {}", self.config.chat_model, self.chat_url)
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAiCompatible
    }

    fn chat_model(&self) -> &str {
        &self.config.chat_model
    }

    fn embedding_model(&self) -> Option<&str> {
        self.config.embedding_model.as_deref()
    }

    async fn chat_structured(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        request.check()?;
        let body = chat_body(&self.config.chat_model, self.config.dialect, request);
        let (value, latency) = self.transport.post_json(&self.chat_url, &body).await?;

        let endpoint = self.chat_url.to_string();
        let completion: ChatCompletion =
            serde_json::from_value(value).map_err(|error| ProviderError::MalformedResponse {
                endpoint: endpoint.clone(),
                detail: format!("the body is not a chat completion ({error})"),
            })?;
        let choice = completion.choices.into_iter().next().ok_or_else(|| {
            ProviderError::MalformedResponse {
                endpoint: endpoint.clone(),
                detail: "the completion has no choices".to_string(),
            }
        })?;
        let value = self.parse_content(choice, request.max_tokens)?;
        let usage = completion.usage.unwrap_or_default();
        Ok(ChatResponse {
            value,
            model: completion
                .model
                .unwrap_or_else(|| self.config.chat_model.clone()),
            input_tokens: usage.prompt_tokens.unwrap_or(0),
            output_tokens: usage.completion_tokens.unwrap_or(0),
            latency,
        })
    }

    async fn embed(&self, texts: &[String]) -> Result<Embeddings, ProviderError> {
        let Some(model) = &self.config.embedding_model else {
            return Err(ProviderError::Unsupported {
                detail: format!(
                    "the OpenAI-compatible provider at {} has no embedding model configured; set \
                     one or use the offline embeddings",
                    self.config.base_url
                ),
            });
        };
        if texts.is_empty() {
            return Ok(Embeddings {
                vectors: Vec::new(),
                model: model.clone(),
                input_tokens: 0,
                latency: Default::default(),
            });
        }

        let mut body = json!({ "model": model, "input": texts });
        if let Some(dimensions) = self.config.embedding_dimensions {
            body["dimensions"] = json!(dimensions);
        }
        let (value, latency) = self
            .transport
            .post_json(&self.embeddings_url, &body)
            .await?;
        let endpoint = self.embeddings_url.to_string();
        let malformed = |detail: String| ProviderError::MalformedResponse {
            endpoint: endpoint.clone(),
            detail,
        };
        let response: EmbeddingResponse = serde_json::from_value(value)
            .map_err(|error| malformed(format!("the body is not an embedding list ({error})")))?;
        let vectors = order_embeddings(response.data, texts.len()).map_err(malformed)?;
        Ok(Embeddings {
            vectors,
            model: response.model.unwrap_or_else(|| model.clone()),
            input_tokens: response
                .usage
                .and_then(|usage| usage.prompt_tokens)
                .unwrap_or(0),
            latency,
        })
    }
}

impl OpenAiProvider {
    /// Parses the message content of the first choice as JSON. Some local servers wrap JSON in
    /// a Markdown code fence despite the response format, so one surrounding fence is removed.
    fn parse_content(&self, choice: Choice, max_tokens: u32) -> Result<Value, ProviderError> {
        let malformed = |detail: String, output: Option<String>| ProviderError::MalformedOutput {
            origin: self.origin(),
            detail,
            output,
        };
        if let Some(refusal) = choice.message.refusal.filter(|text| !text.is_empty()) {
            return Err(malformed(
                format!("the model refused: {}", self.transport.clean(&refusal)),
                None,
            ));
        }
        let content = choice.message.content.unwrap_or_default();
        if choice.finish_reason.as_deref() == Some("length") {
            return Err(malformed(
                format!("the output was cut off at max_tokens ({max_tokens}); raise max_tokens"),
                None,
            ));
        }
        let text = strip_code_fence(&content);
        serde_json::from_str(text).map_err(|error| {
            // The output goes into messages and a repair request, so the key is cut out even
            // though the key is never part of a prompt.
            let output = self.transport.without_key(text);
            malformed(
                format!(
                    "the message content is not valid JSON ({error}); it begins with {:?}",
                    shorten(&self.transport.clean(&output), 80)
                ),
                Some(shorten(&output, MAX_OUTPUT_CHARS)),
            )
        })
    }
}

/// Builds the chat completions request body.
// NOTE: `max_tokens` is what vLLM, Ollama and llama.cpp read. OpenAI deprecated it in favour of
// `max_completion_tokens`, and its reasoning models reject it.
fn chat_body(model: &str, dialect: SchemaDialect, request: &ChatRequest) -> Value {
    let mut messages = vec![json!({ "role": "system", "content": request.system })];
    messages.extend(
        request
            .messages
            .iter()
            .map(|message| json!({ "role": message.role, "content": message.content })),
    );
    let response_format = match dialect {
        SchemaDialect::JsonSchema => json!({
            "type": "json_schema",
            "json_schema": {
                "name": request.schema_name,
                "schema": request.schema,
                "strict": request.strict_schema,
            },
        }),
        SchemaDialect::JsonObjectSchema => json!({
            "type": "json_object",
            "schema": request.schema,
        }),
    };
    json!({
        "model": model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "response_format": response_format,
    })
}

/// Removes one Markdown code fence (```` ```json ... ``` ````) around the text, if present.
fn strip_code_fence(content: &str) -> &str {
    let trimmed = content.trim();
    let Some(inner) = trimmed
        .strip_prefix("```")
        .and_then(|rest| rest.strip_suffix("```"))
    else {
        return trimmed;
    };
    // The opening fence may name a language, as in ```json.
    match inner.split_once('\n') {
        Some((language, body)) if !language.trim_start().starts_with(['{', '[']) => body.trim(),
        _ => inner.trim(),
    }
}

/// Puts embeddings in input order by their `index` and checks that each input has one vector
/// and that all vectors have the same length.
fn order_embeddings(data: Vec<EmbeddingData>, expected: usize) -> Result<Vec<Vec<f32>>, String> {
    if data.len() != expected {
        return Err(format!(
            "{} embeddings were returned for {expected} texts",
            data.len()
        ));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        let slot = slots.get_mut(index).ok_or_else(|| {
            format!("embedding index {index} is out of range for {expected} texts")
        })?;
        if slot.is_some() {
            return Err(format!("embedding index {index} appears twice"));
        }
        *slot = Some(item.embedding);
    }
    let vectors: Vec<Vec<f32>> = slots.into_iter().flatten().collect();
    let dimensions = vectors[0].len();
    if dimensions == 0 || vectors.iter().any(|vector| vector.len() != dimensions) {
        return Err("the embeddings are empty or differ in length".to_string());
    }
    Ok(vectors)
}

#[derive(Deserialize)]
struct ChatCompletion {
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: AssistantMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AssistantMessage {
    content: Option<String>,
    refusal: Option<String>,
}

#[derive(Deserialize, Default)]
struct Usage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingData>,
    model: Option<String>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct EmbeddingData {
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ChatMessage;

    fn request() -> ChatRequest {
        let mut request = ChatRequest::new(
            "You configure sites.",
            "Propose zones.",
            "maker_output",
            json!({"type": "object", "properties": {"zones": {"type": "array"}}}),
        );
        request.messages.push(ChatMessage::assistant("{}"));
        request.messages.push(ChatMessage::user("Fix it."));
        request
    }

    #[test]
    fn json_schema_dialect_body() {
        let body = chat_body("gpt-test", SchemaDialect::JsonSchema, &request());
        assert_eq!(body["model"], "gpt-test");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][0]["content"], "You configure sites.");
        assert_eq!(body["messages"][2]["role"], "assistant");
        assert_eq!(body["messages"][3]["content"], "Fix it.");
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(
            body["response_format"]["json_schema"]["name"],
            "maker_output"
        );
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
        assert_eq!(
            body["response_format"]["json_schema"]["schema"]["type"],
            "object"
        );
    }

    #[test]
    fn json_object_dialect_body() {
        let body = chat_body("local", SchemaDialect::JsonObjectSchema, &request());
        assert_eq!(body["response_format"]["type"], "json_object");
        assert_eq!(body["response_format"]["schema"]["type"], "object");
        assert!(body["response_format"].get("json_schema").is_none());
    }

    #[test]
    fn code_fence_stripped() {
        assert_eq!(strip_code_fence("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
        assert_eq!(strip_code_fence("```{\"a\": 1}```"), "{\"a\": 1}");
        assert_eq!(strip_code_fence("  {\"a\": 1} "), "{\"a\": 1}");
    }

    #[test]
    fn embeddings_ordered_by_index() {
        let data = vec![
            EmbeddingData {
                index: Some(1),
                embedding: vec![0.0, 1.0],
            },
            EmbeddingData {
                index: Some(0),
                embedding: vec![1.0, 0.0],
            },
        ];
        let vectors = order_embeddings(data, 2).unwrap();
        assert_eq!(vectors, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
    }

    #[test]
    fn embeddings_count_mismatch_rejected() {
        let data = vec![EmbeddingData {
            index: Some(0),
            embedding: vec![1.0],
        }];
        let error = order_embeddings(data, 2).unwrap_err();
        assert!(
            error.contains("1 embeddings were returned for 2 texts"),
            "{error}"
        );
    }

    #[test]
    fn embeddings_duplicate_index_rejected() {
        let data = vec![
            EmbeddingData {
                index: Some(0),
                embedding: vec![1.0],
            },
            EmbeddingData {
                index: Some(0),
                embedding: vec![1.0],
            },
        ];
        assert!(order_embeddings(data, 2).is_err());
    }

    #[test]
    fn key_with_newline_rejected_without_echo() {
        let config = OpenAiConfig::new(Url::parse("http://127.0.0.1:9/v1").unwrap(), "m")
            .with_api_key(Secret::new("sk-line\nbreak"));
        let error = OpenAiProvider::new(config).unwrap_err();
        assert!(!error.to_string().contains("sk-line"), "{error}");
        assert!(!format!("{error:?}").contains("sk-line"));
    }
}
