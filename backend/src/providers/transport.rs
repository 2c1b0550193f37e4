//! The HTTP layer shared by the OpenAI-compatible and Anthropic clients: one JSON POST with
//! timeouts, a body size cap, status classification and key-free error details.

use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use super::{HttpLimits, ProviderError, ProviderKind, Secret};
use crate::jobs::sanitize::sanitize_text;
use crate::net::{parse_retry_after, read_capped, CappedReadError, USER_AGENT};

/// Maximum length, in characters, of provider text quoted in an error message.
const MAX_DETAIL_CHARS: usize = 300;

/// A configured HTTP client for one provider.
pub(crate) struct Transport {
    client: reqwest::Client,
    limits: HttpLimits,
    /// The key sent in the default headers, kept only to cut it out of error details.
    secret: Option<Secret>,
}

impl Transport {
    /// Builds the client. `headers` are sent with every request and carry the key, so the caller
    /// marks the key's header value as sensitive.
    ///
    /// Redirects are not followed, because reqwest drops only `Authorization` on a cross-host
    /// redirect and would forward `x-api-key`. Proxy variables are ignored.
    // NOTE: outbound proxies are therefore unsupported; a deployment that needs one must reach
    // the provider through a base URL that the proxy serves.
    pub(crate) fn new(
        kind: ProviderKind,
        limits: HttpLimits,
        headers: HeaderMap,
        secret: Option<Secret>,
    ) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.request_timeout)
            .build()
            .map_err(|error| ProviderError::InvalidConfig {
                provider: kind,
                detail: format!("building the HTTP client failed: {}", root_cause(&error)),
            })?;
        Ok(Self {
            client,
            limits,
            secret,
        })
    }

    /// POSTs `body` as JSON and returns the parsed JSON response and the time it took.
    pub(crate) async fn post_json(
        &self,
        url: &Url,
        body: &Value,
    ) -> Result<(Value, Duration), ProviderError> {
        let endpoint = url.to_string();
        let started = Instant::now();
        let mut response = self
            .client
            .post(url.clone())
            .json(body)
            .send()
            .await
            .map_err(|error| self.request_error(&endpoint, error))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = self.read_body(&endpoint, &mut response).await?;
        let latency = started.elapsed();

        if !status.is_success() {
            return Err(self.status_error(&endpoint, status, &headers, &bytes));
        }
        let value =
            serde_json::from_slice(&bytes).map_err(|error| ProviderError::MalformedResponse {
                endpoint: endpoint.clone(),
                detail: format!("the body is not valid JSON ({error})"),
            })?;
        Ok((value, latency))
    }

    /// Reads the body with the `max_response_bytes` cap.
    async fn read_body(
        &self,
        endpoint: &str,
        response: &mut reqwest::Response,
    ) -> Result<Vec<u8>, ProviderError> {
        let limit = self.limits.max_response_bytes;
        read_capped(response, limit)
            .await
            .map_err(|error| match error {
                CappedReadError::TooLarge => ProviderError::MalformedResponse {
                    endpoint: endpoint.to_string(),
                    detail: format!(
                    "the body is larger than max_response_bytes ({limit}); raise the limit or send \
                     fewer texts per request"
                ),
                },
                CappedReadError::Read(error) => self.request_error(endpoint, error),
            })
    }

    /// Classifies a failed send or body read. A connect timeout counts as a connect failure,
    /// so only a slow response is a provider timeout.
    fn request_error(&self, endpoint: &str, error: reqwest::Error) -> ProviderError {
        let endpoint = endpoint.to_string();
        if error.is_connect() {
            ProviderError::Connect {
                endpoint,
                detail: self.clean(&root_cause(&error)),
            }
        } else if error.is_timeout() {
            ProviderError::Timeout {
                endpoint,
                after: self.limits.request_timeout,
            }
        } else {
            ProviderError::Transport {
                endpoint,
                detail: self.clean(&root_cause(&error)),
            }
        }
    }

    fn status_error(
        &self,
        endpoint: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> ProviderError {
        let endpoint = endpoint.to_string();
        let detail = self.clean(&error_detail(body));
        let code = status.as_u16();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = headers
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now()));
            ProviderError::RateLimited {
                endpoint,
                retry_after,
                detail,
            }
        } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            ProviderError::ServerError {
                endpoint,
                status: code,
                detail,
            }
        } else {
            ProviderError::Rejected {
                endpoint,
                status: code,
                detail,
            }
        }
    }

    /// Removes the key and anything that looks like a credential from provider text, and
    /// shortens it. Providers echo keys back, for example in "incorrect API key" errors.
    pub(crate) fn clean(&self, text: &str) -> String {
        shorten(&sanitize_text(&self.without_key(text)), MAX_DETAIL_CHARS)
    }

    /// Replaces every occurrence of the key in `text` with `[redacted]`, changing nothing else.
    pub(crate) fn without_key(&self, text: &str) -> String {
        match &self.secret {
            Some(secret) if !secret.expose().is_empty() => {
                text.replace(secret.expose(), "[redacted]")
            }
            _ => text.to_string(),
        }
    }
}

/// Checks a configured base URL: http or https, a host, and no credentials, query or fragment,
/// because those would leak into error messages and logs.
pub(crate) fn check_base_url(kind: ProviderKind, base_url: &Url) -> Result<(), ProviderError> {
    let invalid = |detail: &str| {
        Err(ProviderError::InvalidConfig {
            provider: kind,
            detail: format!("base URL {}: {detail}", redacted(base_url)),
        })
    };
    if !matches!(base_url.scheme(), "http" | "https") {
        return invalid("the scheme must be http or https");
    }
    if base_url.host_str().is_none_or(str::is_empty) {
        return invalid("a host is missing");
    }
    if !base_url.username().is_empty() || base_url.password().is_some() {
        return invalid("remove the user name and password; keys go in the api_key setting");
    }
    if base_url.query().is_some() || base_url.fragment().is_some() {
        return invalid("remove the query and fragment");
    }
    Ok(())
}

/// Appends `path` to the base URL's path, so `http://host/v1` and `http://host/v1/` both give
/// `http://host/v1/chat/completions`.
pub(crate) fn endpoint(base_url: &Url, path: &str) -> Url {
    let mut url = base_url.clone();
    let joined = format!(
        "{}/{}",
        base_url.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url
}

/// Shortens text to `max` characters, marking the cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Returns the message of an error body: OpenAI's and Anthropic's `error.message` (with
/// `error.type` in front when present), else the body text.
fn error_detail(body: &[u8]) -> String {
    if body.is_empty() {
        return "the response body is empty".to_string();
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let error = &value["error"];
        let message = error["message"].as_str().or(value["message"].as_str());
        if let Some(message) = message {
            return match error["type"].as_str() {
                Some(kind) => format!("{kind}: {message}"),
                None => message.to_string(),
            };
        }
    }
    String::from_utf8_lossy(body).into_owned()
}

fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// Returns the innermost cause of a reqwest error, such as "Connection refused (os error 111)",
/// without the URL.
fn root_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_joins_with_and_without_slash() {
        let plain = Url::parse("http://127.0.0.1:8080/v1").unwrap();
        let slash = Url::parse("http://127.0.0.1:8080/v1/").unwrap();
        let root = Url::parse("http://127.0.0.1:8080").unwrap();
        let expected = "http://127.0.0.1:8080/v1/chat/completions";
        assert_eq!(endpoint(&plain, "chat/completions").as_str(), expected);
        assert_eq!(endpoint(&slash, "/chat/completions").as_str(), expected);
        assert_eq!(
            endpoint(&root, "/v1/messages").as_str(),
            "http://127.0.0.1:8080/v1/messages"
        );
    }

    #[test]
    fn base_url_with_credentials_rejected() {
        let url = Url::parse("http://user:hunter2@127.0.0.1/v1").unwrap();
        let error = check_base_url(ProviderKind::OpenAiCompatible, &url).unwrap_err();
        let text = error.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("remove the user name and password"), "{text}");
    }

    #[test]
    fn base_url_with_query_rejected() {
        let url = Url::parse("http://127.0.0.1/v1?key=abc").unwrap();
        let error = check_base_url(ProviderKind::Anthropic, &url).unwrap_err();
        assert!(!error.to_string().contains("abc"), "{error}");
    }

    #[test]
    fn error_detail_reads_openai_and_anthropic_shapes() {
        let openai = br#"{"error":{"message":"Invalid model","type":"invalid_request_error"}}"#;
        assert_eq!(error_detail(openai), "invalid_request_error: Invalid model");
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(error_detail(anthropic), "overloaded_error: Overloaded");
        assert_eq!(error_detail(b"Bad Gateway"), "Bad Gateway");
        assert_eq!(error_detail(b""), "the response body is empty");
    }

    #[test]
    fn shorten_marks_cut() {
        assert_eq!(shorten("abcdef", 3), "abc...");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
