//! Fake OpenAI-compatible and Anthropic servers on 127.0.0.1 for provider tests.
//!
//! Each server replies from a queue of scripted [`Reply`]s in the provider's real wire format
//! and records every request it receives, so tests can check headers and bodies. An empty
//! queue responds with HTTP 500 with a message saying so, which makes a missing script obvious.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use url::Url;

/// The wire format a fake server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `POST /v1/chat/completions` and `POST /v1/embeddings`; the base URL ends in `/v1`.
    OpenAi,
    /// `POST /v1/messages`; the base URL is the server root.
    Anthropic,
}

/// One scripted reply to a chat request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A structured output carrying `value`: message content for OpenAI, a `tool_use` block for
    /// Anthropic.
    Structured(Value),
    /// A reply whose output is this text instead of JSON: the message content for OpenAI, a
    /// text block without any `tool_use` block for Anthropic.
    Text(String),
    /// HTTP 429 with this `Retry-After` value, or without the header.
    RateLimited(Option<String>),
    /// An error status with the provider's error body carrying `message`.
    Error(u16, String),
    /// Waits this long, then sends the inner reply.
    Slow(Duration, Box<Reply>),
    /// HTTP 200 with a JSON body cut off in the middle.
    Truncated,
    /// A reply computed from the request's JSON body, for answers that must name what the
    /// request holds (such as the chunk ids in a prompt).
    Computed(Responder),
}

/// A function from a request body to the reply, shared so that [`Reply`] stays cloneable.
#[derive(Clone)]
pub struct Responder(pub Arc<dyn Fn(&Value) -> Reply + Send + Sync>);

impl Responder {
    /// Wraps `respond`.
    pub fn new(respond: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Self {
        Self(Arc::new(respond))
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder(..)")
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request path, such as `/v1/chat/completions`.
    pub path: String,
    /// The query string without `?`, when there is one.
    pub query: Option<String>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The JSON body, or `Value::Null` when the body was not JSON.
    pub body: Value,
}

impl Recorded {
    /// Returns a header's value as text, or `None` when it is missing.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }
}

struct Shared {
    flavor: Flavor,
    replies: Mutex<VecDeque<Reply>>,
    recorded: Mutex<Vec<Recorded>>,
    /// Length of the vectors the embeddings endpoint returns. At 0 it returns
    /// `[index, 1.0, 0.5]`; otherwise it computes each vector from its text, so equal texts get
    /// equal vectors.
    embedding_dimensions: std::sync::atomic::AtomicUsize,
}

/// A running fake server; it stops when the value is dropped.
pub struct FakeServer {
    /// The base URL to configure the provider with.
    pub base_url: Url,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts a server of `flavor` on a free port of 127.0.0.1.
    pub async fn start(flavor: Flavor) -> Self {
        let shared = Arc::new(Shared {
            flavor,
            replies: Mutex::new(VecDeque::new()),
            recorded: Mutex::new(Vec::new()),
            embedding_dimensions: std::sync::atomic::AtomicUsize::new(0),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a port on 127.0.0.1 failed");
        let address = listener.local_addr().expect("the listener has an address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake provider server failed");
        });
        let root = format!("http://{address}");
        let base_url = match flavor {
            Flavor::OpenAi => format!("{root}/v1"),
            Flavor::Anthropic => root,
        };
        Self {
            base_url: Url::parse(&base_url).expect("the fake server URL is valid"),
            shared,
            task,
        }
    }

    /// Adds a reply to the end of the queue.
    pub fn push(&self, reply: Reply) {
        self.shared.replies.lock().unwrap().push_back(reply);
    }

    /// Returns the requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().unwrap().clone()
    }

    /// Makes the embeddings endpoint return vectors of `dimensions` numbers derived from each
    /// text, as a real embedding model of that size would.
    pub fn set_embedding_dimensions(&self, dimensions: usize) {
        self.shared
            .embedding_dimensions
            .store(dimensions, std::sync::atomic::Ordering::SeqCst);
    }

    /// Returns the number of replies not used yet.
    pub fn pending(&self) -> usize {
        self.shared.replies.lock().unwrap().len()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.recorded.lock().unwrap().push(Recorded {
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers,
        body: body.clone(),
    });

    // OpenAI-compatible routes end the configured base path, which is `/v1` here and a
    // deployment path for Azure OpenAI.
    match (shared.flavor, uri.path()) {
        (Flavor::OpenAi, path) if path.ends_with("/embeddings") => {
            let dimensions = shared
                .embedding_dimensions
                .load(std::sync::atomic::Ordering::SeqCst);
            return embeddings(&body, dimensions);
        }
        (Flavor::OpenAi, path) if path.ends_with("/chat/completions") => {}
        (Flavor::Anthropic, "/v1/messages") => {}
        (flavor, path) => {
            let message = format!("the fake server has no route {path}");
            return error_response(flavor, 404, &message, None);
        }
    }

    let next = shared.replies.lock().unwrap().pop_front();
    let Some(mut reply) = next else {
        return error_response(
            shared.flavor,
            500,
            "the fake server has no scripted reply",
            None,
        );
    };
    loop {
        match reply {
            Reply::Slow(wait, inner) => {
                tokio::time::sleep(wait).await;
                reply = *inner;
            }
            Reply::Computed(responder) => reply = (responder.0)(&body),
            _ => break,
        }
    }
    match shared.flavor {
        Flavor::OpenAi => openai_reply(reply, &body),
        Flavor::Anthropic => anthropic_reply(reply, &body),
    }
}

fn openai_reply(reply: Reply, request: &Value) -> Response {
    let completion = |content: String| {
        json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": request["model"],
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": content, "refusal": null },
                "finish_reason": "stop",
            }],
            "usage": { "prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150 },
        })
    };
    match reply {
        Reply::Structured(value) => json_response(200, completion(value.to_string())),
        Reply::Text(text) => json_response(200, completion(text)),
        Reply::Truncated => truncated(completion("{\"zones\": []}".to_string())),
        other => status_reply(Flavor::OpenAi, other),
    }
}

fn anthropic_reply(reply: Reply, request: &Value) -> Response {
    let message = |content: Value, stop_reason: &str| {
        json!({
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": { "input_tokens": 200, "output_tokens": 40 },
        })
    };
    let tool_name = request["tool_choice"]["name"].clone();
    match reply {
        Reply::Structured(value) => json_response(
            200,
            message(
                json!([{ "type": "tool_use", "id": "toolu_fake", "name": tool_name, "input": value }]),
                "tool_use",
            ),
        ),
        Reply::Text(text) => json_response(
            200,
            message(json!([{ "type": "text", "text": text }]), "end_turn"),
        ),
        Reply::Truncated => truncated(message(json!([]), "end_turn")),
        other => status_reply(Flavor::Anthropic, other),
    }
}

fn status_reply(flavor: Flavor, reply: Reply) -> Response {
    match reply {
        Reply::RateLimited(retry_after) => {
            error_response(flavor, 429, "rate limit reached", retry_after.as_deref())
        }
        Reply::Error(status, message) => error_response(flavor, status, &message, None),
        _ => unreachable!("structured, text and truncated replies are handled per flavor"),
    }
}

/// Responds to `POST /v1/embeddings` with one 3-dimensional vector per input, `[i, 1, 0.5]`, listed
/// in reverse order with their indexes, so the client must sort by index.
fn embeddings(request: &Value, dimensions: usize) -> Response {
    let inputs = request["input"].as_array().cloned().unwrap_or_default();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(index, input)| {
            let embedding = if dimensions == 0 {
                vec![index as f32, 1.0, 0.5]
            } else {
                text_vector(input.as_str().unwrap_or_default(), dimensions)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    json_response(
        200,
        json!({
            "object": "list",
            "data": data,
            "model": request["model"],
            "usage": { "prompt_tokens": 9, "total_tokens": 9 },
        }),
    )
}

/// A vector of `dimensions` positive numbers drawn from a generator seeded with the text's
/// FNV-1a hash: the same text always gets the same vector.
fn text_vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (0..dimensions)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) % 1000) as f32 / 1000.0 + 0.001
        })
        .collect()
}

fn error_response(
    flavor: Flavor,
    status: u16,
    message: &str,
    retry_after: Option<&str>,
) -> Response {
    let body = match flavor {
        Flavor::OpenAi => json!({
            "error": { "message": message, "type": error_type(status), "param": null, "code": null },
        }),
        Flavor::Anthropic => json!({
            "type": "error",
            "error": { "type": error_type(status), "message": message },
        }),
    };
    let mut response = json_response(status, body);
    if let Some(value) = retry_after {
        response.headers_mut().insert(
            "retry-after",
            HeaderValue::from_str(value).expect("a scripted Retry-After is a valid header"),
        );
    }
    response
}

fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).expect("a scripted status is valid");
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Sends the first half of a valid JSON body, as a server that failed mid-write would.
fn truncated(body: Value) -> Response {
    let text = body.to_string();
    let cut = text.len() / 2;
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        text[..cut].to_string(),
    )
        .into_response()
}
