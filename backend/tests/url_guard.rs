//! The guarded HTTP client against small HTTP servers on 127.0.0.1.
//!
//! Every test names its own server's exact address and port in `loopback_exceptions` so the
//! client may reach it. URLs aimed anywhere else are refused by the guard before a connection is
//! attempted, so no traffic leaves the machine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backend::net::{FetchError, GuardedClient, Policy, Resolve, StaticResolver, USER_AGENT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Shared state of the test server: its request count and the webhook bodies it received.
#[derive(Clone)]
struct ServerState {
    hits: Arc<AtomicUsize>,
    hooks: mpsc::UnboundedSender<(HeaderMap, serde_json::Value)>,
}

/// A running test server, with what it received.
struct TestServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    hooks: mpsc::UnboundedReceiver<(HeaderMap, serde_json::Value)>,
}

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn start_server() -> TestServer {
    let hits = Arc::new(AtomicUsize::new(0));
    let (sender, hooks) = mpsc::unbounded_channel();
    let state = ServerState {
        hits: hits.clone(),
        hooks: sender,
    };
    let router = Router::new()
        .route("/doc", get(doc))
        .route("/user-agent", get(user_agent))
        .route("/host", get(host))
        .route("/binary", get(binary))
        .route("/no-type", get(no_type))
        .route("/declared-large", get(declared_large))
        .route("/r/{remaining}", get(redirect_chain))
        .route("/nested/relative", get(relative_redirect))
        .route("/to-private", get(to_private))
        .route("/to-metadata", get(to_metadata))
        .route("/to-ftp", get(to_ftp))
        .route("/limited", get(limited))
        .route("/limited-no-header", get(limited_without_header))
        .route("/broken", get(broken))
        .route("/missing", get(missing))
        .route("/slow", get(slow))
        .route("/hook", post(hook))
        .route("/hook-redirect", post(hook_redirect))
        .route("/hook-broken", post(broken))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_hits,
        ))
        .with_state(state);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    TestServer { addr, hits, hooks }
}

async fn count_hits(
    State(state): State<ServerState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    next.run(request).await
}

async fn doc() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<h1>Site manual</h1>",
    )
}

async fn user_agent(headers: HeaderMap) -> impl IntoResponse {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("(none)")
        .to_string();
    ([(header::CONTENT_TYPE, "text/plain")], agent)
}

async fn host(headers: HeaderMap) -> impl IntoResponse {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("(none)")
        .to_string();
    ([(header::CONTENT_TYPE, "text/plain")], host)
}

async fn binary() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        vec![0_u8; 16],
    )
}

async fn no_type() -> Response {
    Response::new(axum::body::Body::from("untyped"))
}

async fn declared_large() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain")],
        "x".repeat(256 * 1024),
    )
}

async fn redirect_chain(Path(remaining): Path<u32>) -> Response {
    if remaining == 0 {
        return doc().await.into_response();
    }
    Redirect::temporary(&format!("/r/{}", remaining - 1)).into_response()
}

async fn relative_redirect() -> Response {
    Redirect::to("../doc").into_response()
}

async fn to_private() -> Response {
    Redirect::temporary("http://10.0.0.1/").into_response()
}

async fn to_metadata() -> Response {
    Redirect::temporary("http://169.254.169.254/latest/meta-data/").into_response()
}

async fn to_ftp() -> Response {
    Redirect::temporary("ftp://127.0.0.1/file").into_response()
}

async fn limited() -> impl IntoResponse {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, "7")],
        "slow down",
    )
}

async fn limited_without_header() -> impl IntoResponse {
    (StatusCode::TOO_MANY_REQUESTS, "slow down")
}

async fn broken() -> impl IntoResponse {
    (StatusCode::INTERNAL_SERVER_ERROR, "failed")
}

async fn missing() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found")
}

async fn slow() -> impl IntoResponse {
    tokio::time::sleep(Duration::from_secs(30)).await;
    doc().await
}

async fn hook(
    State(state): State<ServerState>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    state.hooks.send((headers, body)).unwrap();
    StatusCode::NO_CONTENT
}

async fn hook_redirect() -> Response {
    Redirect::temporary("/hook").into_response()
}

/// Starts a raw TCP server that writes `head` to every connection and then calls `body` to
/// write the rest, for responses axum does not produce, such as endless or stalled bodies.
async fn start_raw_server<F, Fut>(head: &'static str, body: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Arc::new(body);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                // One read suffices for the small GET requests these tests send.
                let mut request = [0_u8; 4096];
                let _ = stream.read(&mut request).await;
                if stream.write_all(head.as_bytes()).await.is_ok() {
                    body(stream).await;
                }
            });
        }
    });
    addr
}

/// Writes 16 KiB chunks until the client hangs up, or 256 MiB as a backstop.
async fn write_endless(mut stream: tokio::net::TcpStream) {
    let chunk = vec![b'a'; 16 * 1024];
    for _ in 0..16 * 1024 {
        if stream.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

/// Writes a few bytes of a promised 100, then stalls.
async fn write_stalled(mut stream: tokio::net::TcpStream) {
    let _ = stream.write_all(b"0123456789").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
}

/// Builds the policy for a test server on 127.0.0.1 at `port`: that exact address and port
/// allowed, the default ports too, and limits small enough for fast tests.
fn loopback_policy(port: u16) -> Policy {
    Policy {
        loopback_exceptions: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)],
        allowed_ports: vec![80, 443],
        total_timeout: Duration::from_secs(10),
        max_body_bytes: 64 * 1024,
        ..Policy::default()
    }
}

fn client_for(port: u16) -> GuardedClient {
    GuardedClient::with_resolver(loopback_policy(port), Arc::new(StaticResolver::new()))
}

fn refusal_code(error: &FetchError) -> &'static str {
    match error {
        FetchError::Refused(refusal) => refusal.reason_code(),
        other => panic!("expected a guard refusal, got: {other}"),
    }
}

#[tokio::test]
async fn fetch_returns_document() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let fetched = client.fetch(&server.url("/doc")).await.unwrap();

    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.content_type, "text/html; charset=utf-8");
    assert_eq!(fetched.bytes, b"<h1>Site manual</h1>");
    assert_eq!(fetched.final_url.as_str(), server.url("/doc"));
}

#[tokio::test]
async fn fetch_sends_user_agent() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let fetched = client.fetch(&server.url("/user-agent")).await.unwrap();

    assert_eq!(String::from_utf8(fetched.bytes).unwrap(), USER_AGENT);
    assert!(USER_AGENT.starts_with("Siteline/"));
}

#[tokio::test]
async fn fetch_connects_to_pinned_address() {
    // The name exists only in the fake resolver's table, so the fetch succeeds only if the
    // client connects to the vetted address instead of resolving the name again.
    let server = start_server().await;
    let port = server.addr.port();
    let resolver =
        StaticResolver::new().with("pinned.siteline.test", &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let client = GuardedClient::with_resolver(loopback_policy(port), Arc::new(resolver));

    let fetched = client
        .fetch(&format!("http://pinned.siteline.test:{port}/host"))
        .await
        .unwrap();

    assert_eq!(
        String::from_utf8(fetched.bytes).unwrap(),
        format!("pinned.siteline.test:{port}")
    );
}

/// A resolver whose answer changes after the first lookup, as a DNS rebinding attack's does.
struct RebindingResolver {
    first: IpAddr,
    later: IpAddr,
    lookups: AtomicUsize,
}

impl RebindingResolver {
    fn new(first: IpAddr, later: IpAddr) -> Self {
        Self {
            first,
            later,
            lookups: AtomicUsize::new(0),
        }
    }
}

#[async_trait::async_trait]
impl Resolve for RebindingResolver {
    async fn resolve(&self, _host: &str) -> std::io::Result<Vec<IpAddr>> {
        let lookup = self.lookups.fetch_add(1, Ordering::SeqCst);
        Ok(vec![if lookup == 0 { self.first } else { self.later }])
    }
}

#[tokio::test]
async fn rebinding_after_check_is_ignored() {
    // The first answer passes the check; every later answer is the metadata address. The fetch
    // reaches the test server, so the connection used the checked address and no new lookup.
    let server = start_server().await;
    let port = server.addr.port();
    let resolver = Arc::new(RebindingResolver::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    ));
    let client = GuardedClient::with_resolver(loopback_policy(port), resolver.clone());

    let fetched = client
        .fetch(&format!("http://rebind.siteline.test:{port}/host"))
        .await
        .unwrap();

    assert_eq!(
        String::from_utf8(fetched.bytes).unwrap(),
        format!("rebind.siteline.test:{port}")
    );
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn rebinding_before_redirect_is_refused() {
    // The redirect stays on the same name; its hop resolves again, gets the metadata address
    // and is refused before a second request is sent.
    let server = start_server().await;
    let port = server.addr.port();
    let resolver = Arc::new(RebindingResolver::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    ));
    // The port is listed as well, so the second answer meets the address check itself.
    let policy = Policy {
        allowed_ports: vec![80, 443, port],
        ..loopback_policy(port)
    };
    let client = GuardedClient::with_resolver(policy, resolver.clone());

    let error = client
        .fetch(&format!("http://rebind.siteline.test:{port}/r/1"))
        .await
        .unwrap_err();

    assert_eq!(refusal_code(&error), "metadata_address", "{error}");
    assert!(error.to_string().contains("169.254.169.254"), "{error}");
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 2);
    assert_eq!(server.hits(), 1, "only the first hop was sent");
}

#[tokio::test]
async fn rebinding_from_refused_answer_never_connects() {
    // The first answer is private; a later, harmless answer must not matter.
    let server = start_server().await;
    let port = server.addr.port();
    let resolver = Arc::new(RebindingResolver::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    ));
    let policy = Policy {
        allowed_ports: vec![80, 443, port],
        ..loopback_policy(port)
    };
    let client = GuardedClient::with_resolver(policy, resolver.clone());

    let error = client
        .fetch(&format!("http://rebind.siteline.test:{port}/doc"))
        .await
        .unwrap_err();

    assert_eq!(refusal_code(&error), "private_address");
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1);
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn loopback_refused_without_escape_hatch() {
    let server = start_server().await;
    let policy = Policy {
        allowed_ports: vec![server.addr.port()],
        ..Policy::default()
    };
    let client = GuardedClient::with_resolver(policy, Arc::new(StaticResolver::new()));

    let error = client.fetch(&server.url("/doc")).await.unwrap_err();

    assert_eq!(refusal_code(&error), "loopback_address");
    assert!(error.is_permanent());
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn content_type_outside_allowlist_refused() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let error = client.fetch(&server.url("/binary")).await.unwrap_err();
    assert!(
        matches!(&error, FetchError::ContentTypeNotAllowed { content_type: Some(value), .. } if value == "application/octet-stream"),
        "{error}"
    );
    assert!(error.is_permanent());

    let error = client.fetch(&server.url("/no-type")).await.unwrap_err();
    assert!(
        matches!(
            &error,
            FetchError::ContentTypeNotAllowed {
                content_type: None,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn declared_length_over_cap_refused() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let error = client
        .fetch(&server.url("/declared-large"))
        .await
        .unwrap_err();

    assert!(
        matches!(error, FetchError::TooLarge { limit: 65536, .. }),
        "{error}"
    );
    assert!(error.is_permanent());
}

#[tokio::test]
async fn endless_body_stopped_at_cap() {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n";
    let addr = start_raw_server(head, write_endless).await;
    let client = client_for(addr.port());

    let started = Instant::now();
    let error = client
        .fetch(&format!("http://{addr}/endless"))
        .await
        .unwrap_err();

    assert!(
        matches!(error, FetchError::TooLarge { limit: 65536, .. }),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn redirect_chain_of_five_followed() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let fetched = client.fetch(&server.url("/r/5")).await.unwrap();

    assert_eq!(fetched.final_url.path(), "/r/0");
    assert_eq!(fetched.bytes, b"<h1>Site manual</h1>");
    assert_eq!(server.hits(), 6);
}

#[tokio::test]
async fn redirect_chain_of_six_refused() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let error = client.fetch(&server.url("/r/6")).await.unwrap_err();

    assert!(
        matches!(error, FetchError::TooManyRedirects { limit: 5, .. }),
        "{error}"
    );
    assert!(error.is_permanent());
    assert_eq!(server.hits(), 6);
}

#[tokio::test]
async fn redirect_limit_is_configurable() {
    let server = start_server().await;
    let policy = Policy {
        max_redirects: 1,
        ..loopback_policy(server.addr.port())
    };
    let client = GuardedClient::with_resolver(policy, Arc::new(StaticResolver::new()));

    assert!(client.fetch(&server.url("/r/1")).await.is_ok());
    let error = client.fetch(&server.url("/r/2")).await.unwrap_err();
    assert!(
        matches!(error, FetchError::TooManyRedirects { limit: 1, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn relative_redirect_resolved_against_current_url() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let fetched = client.fetch(&server.url("/nested/relative")).await.unwrap();

    assert_eq!(fetched.final_url.as_str(), server.url("/doc"));
}

#[tokio::test]
async fn redirect_to_private_address_refused() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let error = client.fetch(&server.url("/to-private")).await.unwrap_err();

    assert_eq!(refusal_code(&error), "private_address");
    assert!(error.to_string().contains("http://10.0.0.1/"), "{error}");
    assert!(error.is_permanent());
}

#[tokio::test]
async fn redirect_to_metadata_address_refused() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let error = client.fetch(&server.url("/to-metadata")).await.unwrap_err();

    assert_eq!(refusal_code(&error), "metadata_address");
}

#[tokio::test]
async fn redirect_to_other_scheme_refused() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let error = client.fetch(&server.url("/to-ftp")).await.unwrap_err();

    assert_eq!(refusal_code(&error), "bad_scheme");
}

#[tokio::test]
async fn rate_limit_parses_retry_after() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let error = client.fetch(&server.url("/limited")).await.unwrap_err();
    assert!(matches!(error, FetchError::RateLimited { .. }), "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert!(!error.is_permanent());

    let error = client
        .fetch(&server.url("/limited-no-header"))
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::RateLimited { .. }), "{error}");
    assert_eq!(error.retry_after(), None);
}

#[tokio::test]
async fn server_error_is_transient() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let error = client.fetch(&server.url("/broken")).await.unwrap_err();

    assert!(
        matches!(error, FetchError::ServerError { status: 500, .. }),
        "{error}"
    );
    assert!(!error.is_permanent());
}

#[tokio::test]
async fn not_found_is_permanent() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let error = client.fetch(&server.url("/missing")).await.unwrap_err();

    assert!(
        matches!(error, FetchError::ClientError { status: 404, .. }),
        "{error}"
    );
    assert!(error.is_permanent());
}

#[tokio::test]
async fn slow_response_times_out() {
    let server = start_server().await;
    let policy = Policy {
        total_timeout: Duration::from_millis(500),
        ..loopback_policy(server.addr.port())
    };
    let client = GuardedClient::with_resolver(policy, Arc::new(StaticResolver::new()));

    let started = Instant::now();
    let error = client.fetch(&server.url("/slow")).await.unwrap_err();

    assert!(
        matches!(error, FetchError::Timeout { limit, .. } if limit == Duration::from_millis(500)),
        "{error}"
    );
    assert!(!error.is_permanent());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn stalled_body_times_out() {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n";
    let addr = start_raw_server(head, write_stalled).await;
    let policy = Policy {
        total_timeout: Duration::from_millis(500),
        ..loopback_policy(addr.port())
    };
    let client = GuardedClient::with_resolver(policy, Arc::new(StaticResolver::new()));

    let error = client
        .fetch(&format!("http://{addr}/stalled"))
        .await
        .unwrap_err();

    assert!(matches!(error, FetchError::Timeout { .. }), "{error}");
}

#[tokio::test]
async fn closed_port_is_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client_for(addr.port());

    let error = client
        .fetch(&format!("http://{addr}/doc"))
        .await
        .unwrap_err();

    assert!(matches!(error, FetchError::Connect { .. }), "{error}");
    assert!(!error.is_permanent());
}

#[tokio::test]
async fn post_json_delivers_body() {
    let mut server = start_server().await;
    let client = client_for(server.addr.port());
    let alert = serde_json::json!({"alert": "door_forced", "site": "north gate", "level": 3});

    let status = client
        .post_json(&server.url("/hook"), &alert)
        .await
        .unwrap();

    assert_eq!(status, 204);
    let (headers, received) = server.hooks.recv().await.unwrap();
    assert_eq!(received, alert);
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    assert_eq!(headers.get(header::USER_AGENT).unwrap(), USER_AGENT);
}

#[tokio::test]
async fn post_json_does_not_follow_redirects() {
    let mut server = start_server().await;
    let client = client_for(server.addr.port());
    let alert = serde_json::json!({"alert": "test"});

    let error = client
        .post_json(&server.url("/hook-redirect"), &alert)
        .await
        .unwrap_err();

    assert!(
        matches!(&error, FetchError::RedirectNotFollowed { status: 307, location: Some(location), .. } if location == "/hook"),
        "{error}"
    );
    assert!(error.is_permanent());
    assert_eq!(server.hits(), 1);
    assert!(server.hooks.try_recv().is_err());
}

#[tokio::test]
async fn post_json_classifies_server_error() {
    let server = start_server().await;
    let client = client_for(server.addr.port());

    let error = client
        .post_json(&server.url("/hook-broken"), &serde_json::json!({}))
        .await
        .unwrap_err();

    assert!(
        matches!(error, FetchError::ServerError { status: 500, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn post_json_refuses_private_address() {
    let client = client_for(8080);

    let error = client
        .post_json("http://10.0.0.1/hook", &serde_json::json!({}))
        .await
        .unwrap_err();

    assert_eq!(refusal_code(&error), "private_address");
}
