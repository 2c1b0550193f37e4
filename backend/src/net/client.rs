//! The enforcement half of the outbound URL guard: an HTTP client that connects only to
//! addresses [`check_url`] accepted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use url::{Host, Url};

use super::guard::{
    check_url, redact_url, shorten, Policy, Refusal, Resolve, SystemResolver, Vetted,
};

/// The `User-Agent` header sent on every outbound request.
pub const USER_AGENT: &str = concat!("Siteline/", env!("CARGO_PKG_VERSION"));

/// A document that a fetch read in full.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL the document came from, after any redirects.
    pub final_url: Url,
    /// The HTTP status, always a 2xx code.
    pub status: u16,
    /// The full `Content-Type` header, parameters such as `charset` included.
    pub content_type: String,
    /// The body, at most the policy's `max_body_bytes` long.
    pub bytes: Vec<u8>,
}

/// Why an outbound request failed.
///
/// [`FetchError::is_permanent`] returns whether another attempt can succeed, and
/// [`FetchError::retry_after`] returns the delay a 429 response asked for. URLs in messages are
/// redacted_url without user name, password, query and fragment.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The guard refused the URL, or a redirect target, before any connection was made.
    #[error(transparent)]
    Refused(#[from] Refusal),

    /// The body exceeded the policy's `max_body_bytes`.
    #[error("response from {url} is larger than the limit of {limit} bytes; raise max_body_bytes or fetch a smaller document")]
    TooLarge { url: String, limit: usize },

    /// The response's content type is not in the policy's `allowed_content_types`.
    #[error("response from {url} has content type {}, which is not in the allowed content types", .content_type.as_deref().unwrap_or("(none)"))]
    ContentTypeNotAllowed {
        url: String,
        content_type: Option<String>,
    },

    /// A fetch met more redirects than the policy's `max_redirects`.
    #[error(
        "fetching {url} redirected more than {limit} times; use the final URL of the document"
    )]
    TooManyRedirects { url: String, limit: usize },

    /// A redirect response had no usable `Location` header.
    #[error("response from {url} is a redirect with a missing or invalid Location header ({}); the server must send a valid Location", .location.as_deref().unwrap_or("none"))]
    InvalidRedirect {
        url: String,
        location: Option<String>,
    },

    /// A POST received a redirect, which is never followed because a webhook must be configured
    /// with its final URL.
    #[error("POST to {url} returned a redirect (HTTP {status}, Location {}); redirects are not followed for POST, so configure the final URL", .location.as_deref().unwrap_or("none"))]
    RedirectNotFollowed {
        url: String,
        status: u16,
        location: Option<String>,
    },

    /// The server returned a 4xx status other than 429.
    #[error("request to {url} failed with HTTP status {status}")]
    ClientError { url: String, status: u16 },

    /// The server returned 429 Too Many Requests.
    #[error("request to {url} was rate limited (HTTP 429){}", retry_after_hint(.retry_after))]
    RateLimited {
        url: String,
        /// The delay from the `Retry-After` header, when it was present and valid.
        retry_after: Option<Duration>,
    },

    /// The server returned a 5xx status.
    #[error("request to {url} failed with server error HTTP {status}; retry later")]
    ServerError { url: String, status: u16 },

    /// The server returned a 1xx or 3xx status that a fetch does not handle.
    #[error("request to {url} returned unexpected HTTP status {status}")]
    UnexpectedStatus { url: String, status: u16 },

    /// The request did not finish within the policy's connect or total timeout.
    #[error("request to {url} timed out after {limit:?}")]
    Timeout { url: String, limit: Duration },

    /// The connection could not be opened.
    #[error("connecting to {url} failed: {detail}")]
    Connect { url: String, detail: String },

    /// The connection failed after it was opened, for example while reading the body.
    #[error("request to {url} failed: {detail}")]
    Transport { url: String, detail: String },
}

impl FetchError {
    /// Returns whether retrying the same request cannot help.
    ///
    /// Guard refusals, size and content-type failures, redirect failures and 4xx statuses are
    /// permanent. Two exceptions are transient: a host that did not resolve, because DNS failures
    /// are often temporary, and 408 Request Timeout, which HTTP allows a client to repeat. Rate
    /// limits, 5xx statuses, timeouts and connection failures are transient too.
    pub fn is_permanent(&self) -> bool {
        match self {
            FetchError::Refused(refusal) => !matches!(refusal, Refusal::Unresolvable { .. }),
            FetchError::ClientError { status, .. } => *status != 408,
            FetchError::TooLarge { .. }
            | FetchError::ContentTypeNotAllowed { .. }
            | FetchError::TooManyRedirects { .. }
            | FetchError::InvalidRedirect { .. }
            | FetchError::RedirectNotFollowed { .. }
            | FetchError::UnexpectedStatus { .. } => true,
            FetchError::RateLimited { .. }
            | FetchError::ServerError { .. }
            | FetchError::Timeout { .. }
            | FetchError::Connect { .. }
            | FetchError::Transport { .. } => false,
        }
    }

    /// Returns the delay a 429 response asked for in its `Retry-After` header.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn retry_after_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(delay) => format!("; retry after {} s", delay.as_secs()),
        None => "; retry later".to_string(),
    }
}

/// HTTP client for every outbound request Siteline makes on a user's behalf, such as knowledge
/// fetches and alert webhooks.
///
/// Each request, and each redirect hop, is checked with [`check_url`] and then sent by a client
/// whose DNS answer for that host is pinned to the checked addresses. A DNS answer that changes
/// between the check and the connection (DNS rebinding) therefore cannot redirect the connection.
/// Proxies from the environment are ignored for the same reason, because a proxy would resolve
/// the host itself.
#[derive(Clone)]
pub struct GuardedClient {
    policy: Policy,
    resolver: Arc<dyn Resolve>,
}

impl std::fmt::Debug for GuardedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl GuardedClient {
    /// Creates a client that resolves host names with the operating system's resolver.
    pub fn new(policy: Policy) -> Self {
        Self::with_resolver(policy, Arc::new(SystemResolver))
    }

    /// Creates a client that resolves host names with `resolver`.
    pub fn with_resolver(policy: Policy, resolver: Arc<dyn Resolve>) -> Self {
        Self { policy, resolver }
    }

    /// Returns the policy every request is checked against.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Checks `url` with the guard without sending anything.
    pub async fn check(&self, url: &str) -> Result<Vetted, Refusal> {
        check_url(url, &self.policy, self.resolver.as_ref()).await
    }

    /// Fetches a document with GET, following up to `max_redirects` redirects, each checked by
    /// the guard.
    ///
    /// The response must have a 2xx status and an allowed content type, and its body is read as
    /// a stream that stops at `max_body_bytes`. The policy's `total_timeout` covers every hop and
    /// the body.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        let limit = self.policy.total_timeout;
        match tokio::time::timeout(limit, self.fetch_following_redirects(url)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(FetchError::Timeout {
                url: redact_raw_url(url),
                limit,
            }),
        }
    }

    /// Sends `body` as JSON with POST, for webhooks, and returns the 2xx status.
    ///
    /// Redirects are not followed. The response body is not read: the status alone shows whether
    /// the delivery succeeded, and dropping the response closes the connection, so a large or
    /// endless body costs nothing.
    /// Webhook services often put a secret token in the path, so errors name only the URL's
    /// origin.
    // NOTE: a guard refusal (`FetchError::Refused`) still shows the path; the URL comes from
    // configuration, and job logs pass error text through the payload sanitizer.
    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<u16, FetchError> {
        let limit = self.policy.total_timeout;
        match tokio::time::timeout(limit, self.post_json_once(url, body)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(FetchError::Timeout {
                url: Url::parse(url).map_or_else(|_| shorten(url), |url| origin_label(&url)),
                limit,
            }),
        }
    }

    async fn fetch_following_redirects(&self, url: &str) -> Result<Fetched, FetchError> {
        let mut current = url.to_string();
        let mut redirects = 0;
        loop {
            let vetted = self.check(&current).await?;
            let redacted_url = redact_url(vetted.url());
            let client = self.client_for(&vetted)?;
            let mut response = client
                .get(vetted.url().clone())
                .header(ACCEPT, self.policy.allowed_content_types.join(", "))
                .send()
                .await
                .map_err(|err| self.request_error(&redacted_url, err))?;

            let status = response.status();
            if is_followed_redirect(status) {
                if redirects >= self.policy.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        url: redact_raw_url(url),
                        limit: self.policy.max_redirects,
                    });
                }
                redirects += 1;
                current =
                    redirect_target(vetted.url(), response.headers(), &redacted_url)?.to_string();
                continue;
            }
            if let Some(error) = status_error(&redacted_url, status, response.headers()) {
                return Err(error);
            }

            let content_type = header_text(response.headers(), CONTENT_TYPE).map(str::to_string);
            let content_type = match content_type {
                Some(value) if self.content_type_allowed(&value) => value,
                other => {
                    return Err(FetchError::ContentTypeNotAllowed {
                        url: redacted_url,
                        content_type: other,
                    })
                }
            };

            let bytes = self.read_body(&redacted_url, &mut response).await?;
            return Ok(Fetched {
                final_url: vetted.url().clone(),
                status: status.as_u16(),
                content_type,
                bytes,
            });
        }
    }

    async fn post_json_once(&self, url: &str, body: &serde_json::Value) -> Result<u16, FetchError> {
        let vetted = self.check(url).await?;
        let redacted_url = origin_label(vetted.url());
        let client = self.client_for(&vetted)?;
        let response = client
            .post(vetted.url().clone())
            .json(body)
            .send()
            .await
            .map_err(|err| self.request_error(&redacted_url, err))?;

        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::RedirectNotFollowed {
                url: redacted_url,
                status: status.as_u16(),
                location: header_text(response.headers(), LOCATION).map(shorten),
            });
        }
        if let Some(error) = status_error(&redacted_url, status, response.headers()) {
            return Err(error);
        }
        Ok(status.as_u16())
    }

    fn content_type_allowed(&self, content_type: &str) -> bool {
        let essence = mime_essence(content_type);
        self.policy
            .allowed_content_types
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(&essence))
    }

    /// Builds a client for one request whose only DNS answer for the URL's host is the vetted
    /// addresses. IP-literal hosts need no pinning because the client connects to the literal.
    // NOTE: the tests run pinning over plain HTTP only. For https the override changes only DNS,
    // so TLS still verifies the certificate against the URL's host name, but no test covers it.
    fn client_for(&self, vetted: &Vetted) -> Result<reqwest::Client, FetchError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.policy.connect_timeout);
        if let Some(Host::Domain(name)) = vetted.url().host() {
            builder = builder.resolve_to_addrs(name, vetted.addrs());
        }
        builder.build().map_err(|err| FetchError::Transport {
            url: redact_url(vetted.url()),
            detail: format!("building the HTTP client failed: {}", root_cause(err)),
        })
    }

    /// Reads the body with the `max_body_bytes` cap.
    async fn read_body(
        &self,
        redacted_url: &str,
        response: &mut reqwest::Response,
    ) -> Result<Vec<u8>, FetchError> {
        let limit = self.policy.max_body_bytes;
        read_capped(response, limit)
            .await
            .map_err(|error| match error {
                CappedReadError::TooLarge => FetchError::TooLarge {
                    url: redacted_url.to_string(),
                    limit,
                },
                CappedReadError::Read(err) => self.request_error(redacted_url, err),
            })
    }

    /// Classifies a failed send or body read. No reqwest timeout other than the connect timeout
    /// is set, because the total timeout wraps the whole request.
    fn request_error(&self, redacted_url: &str, err: reqwest::Error) -> FetchError {
        if err.is_timeout() {
            return FetchError::Timeout {
                url: redacted_url.to_string(),
                limit: self.policy.connect_timeout,
            };
        }
        let connect = err.is_connect();
        let detail = root_cause(err);
        if connect {
            FetchError::Connect {
                url: redacted_url.to_string(),
                detail,
            }
        } else {
            FetchError::Transport {
                url: redacted_url.to_string(),
                detail,
            }
        }
    }
}

/// Statuses a GET fetch follows. 300, 304 and the unused 305 and 306 have no single target.
fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// Resolves the `Location` header against the current URL, as relative references allow.
fn redirect_target(
    current: &Url,
    headers: &HeaderMap,
    redacted_url: &str,
) -> Result<Url, FetchError> {
    let location = header_text(headers, LOCATION);
    location
        .and_then(|text| current.join(text).ok())
        .ok_or_else(|| FetchError::InvalidRedirect {
            url: redacted_url.to_string(),
            location: location.map(shorten),
        })
}

/// Returns the error for a status that is not 2xx, or `None` for success.
fn status_error(redacted_url: &str, status: StatusCode, headers: &HeaderMap) -> Option<FetchError> {
    let url = redacted_url.to_string();
    let code = status.as_u16();
    if status.is_success() {
        None
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = header_text(headers, RETRY_AFTER)
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        Some(FetchError::RateLimited { url, retry_after })
    } else if status.is_client_error() {
        Some(FetchError::ClientError { url, status: code })
    } else if status.is_server_error() {
        Some(FetchError::ServerError { url, status: code })
    } else {
        Some(FetchError::UnexpectedStatus { url, status: code })
    }
}

/// Why [`read_capped`] stopped.
#[derive(Debug)]
pub(crate) enum CappedReadError {
    /// The declared or received body is larger than the cap.
    TooLarge,
    /// Reading a chunk failed.
    Read(reqwest::Error),
}

/// Reads a response body chunk by chunk, so at most `limit` bytes plus one chunk are in memory.
/// A declared `Content-Length` over the cap fails before any chunk is read.
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, CappedReadError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(CappedReadError::TooLarge);
    }

    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(CappedReadError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(CappedReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses a `Retry-After` value, either delay-seconds or an HTTP date (RFC 9110, section
/// 10.2.3). A date in the past gives a zero delay.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Returns the MIME type without parameters, lowercased: `text/html` for
/// `Text/HTML; charset=utf-8`.
fn mime_essence(content_type: &str) -> String {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Formats a URL as its origin followed by `/...`, for webhook errors.
fn origin_label(url: &Url) -> String {
    format!("{}/...", url.origin().ascii_serialization())
}

/// Formats a URL that may not parse for a message, hiding credentials and query when it does.
fn redact_raw_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => redact_url(&url),
        Err(_) => shorten(raw),
    }
}

/// Returns the innermost cause of a reqwest error, such as "Connection refused (os error 111)".
/// The outer layers only state that a request failed. The URL is removed because its query may
/// carry a secret.
fn root_cause(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut cause: &dyn std::error::Error = &err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_parses_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(" 42 ", now),
            Some(Duration::from_secs(42))
        );
    }

    #[test]
    fn retry_after_parses_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:51:07 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn retry_after_rejects_garbage() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn mime_essence_drops_parameters() {
        assert_eq!(mime_essence("Text/HTML; charset=utf-8"), "text/html");
        assert_eq!(mime_essence("application/pdf"), "application/pdf");
        assert_eq!(mime_essence(" text/plain ;"), "text/plain");
    }

    #[test]
    fn permanence_follows_error_class() {
        let url = "http://example.com/".to_string();
        let permanent = [
            FetchError::TooLarge {
                url: url.clone(),
                limit: 1,
            },
            FetchError::ContentTypeNotAllowed {
                url: url.clone(),
                content_type: None,
            },
            FetchError::TooManyRedirects {
                url: url.clone(),
                limit: 5,
            },
            FetchError::ClientError {
                url: url.clone(),
                status: 404,
            },
            FetchError::Refused(Refusal::Userinfo { url: url.clone() }),
        ];
        for error in permanent {
            assert!(error.is_permanent(), "{error}");
        }

        let transient = [
            FetchError::ClientError {
                url: url.clone(),
                status: 408,
            },
            FetchError::RateLimited {
                url: url.clone(),
                retry_after: None,
            },
            FetchError::ServerError {
                url: url.clone(),
                status: 503,
            },
            FetchError::Timeout {
                url: url.clone(),
                limit: Duration::from_secs(1),
            },
            FetchError::Refused(Refusal::Unresolvable {
                url: url.clone(),
                host: "example.com".to_string(),
                detail: "no addresses".to_string(),
            }),
        ];
        for error in transient {
            assert!(!error.is_permanent(), "{error}");
        }
    }

    #[test]
    fn retry_after_only_for_rate_limits() {
        let limited = FetchError::RateLimited {
            url: "http://example.com/".to_string(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(
            limited.to_string(),
            "request to http://example.com/ was rate limited (HTTP 429); retry after 7 s"
        );

        let server = FetchError::ServerError {
            url: "http://example.com/".to_string(),
            status: 503,
        };
        assert_eq!(server.retry_after(), None);
    }

    fn assert_send<T: Send>(_value: T) {}

    #[test]
    fn request_futures_are_send() {
        // Jobs run on tokio's multi-threaded runtime, which needs Send futures. The futures are
        // created and dropped without being polled, so nothing is resolved or sent.
        let client = GuardedClient::new(Policy::default());
        let body = serde_json::json!({});
        assert_send(client.fetch("http://example.com/"));
        assert_send(client.post_json("http://example.com/", &body));
    }

    #[test]
    fn user_agent_names_product_and_version() {
        assert_eq!(
            USER_AGENT,
            format!("Siteline/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
