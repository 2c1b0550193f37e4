//! Limits and switches of the knowledge base, with the product's defaults.

use std::net::SocketAddr;
use std::time::Duration;

use super::embed::EmbeddingSettings;
use crate::net::Policy;
use crate::providers::Secret;

/// Largest document accepted by upload or fetch, in bytes (25 MB).
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 25 * 1000 * 1000;

/// Content types a fetched document may have. Uploads are recognised by their bytes instead.
pub const FETCH_CONTENT_TYPES: [&str; 9] = [
    "text/html",
    "application/xhtml+xml",
    "application/pdf",
    "text/markdown",
    "text/plain",
    "application/json",
    "application/xml",
    "text/xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
];

/// Every knowledge-base setting.
#[derive(Debug, Clone)]
pub struct KnowledgeSettings {
    /// Largest upload or fetched body, in bytes.
    pub max_document_bytes: usize,
    /// Accept `http` URLs as well as `https`; for development only.
    pub allow_http: bool,
    /// When set, only these hosts (and their subdomains) may be fetched.
    pub allowed_hosts: Option<Vec<String>>,
    /// Ports a URL may use besides 443 (and 80 when http is allowed).
    pub extra_ports: Vec<u16>,
    /// Exact loopback addresses and ports that fetches may reach; for tests and development only
    /// (see [`Policy::loopback_exceptions`]).
    pub loopback_exceptions: Vec<SocketAddr>,
    /// Time allowed for a whole fetch, redirects included.
    pub fetch_timeout: Duration,
    /// How often URL sources are fetched again to look for a new version.
    pub refresh_interval: Duration,
    /// Secrets accepted on `POST /api/v1/webhooks/knowledge`: the current one and, during a
    /// rotation, the previous one.
    pub webhook_secrets: Vec<Secret>,
    /// How far a webhook's timestamp may be from the server's clock.
    pub webhook_tolerance: Duration,
    /// Embedding backend, model folder and batch size for chunks and queries.
    pub embedding: EmbeddingSettings,
}

impl Default for KnowledgeSettings {
    fn default() -> Self {
        Self {
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            allow_http: false,
            allowed_hosts: None,
            extra_ports: Vec::new(),
            loopback_exceptions: Vec::new(),
            fetch_timeout: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(7 * 24 * 3600),
            webhook_secrets: Vec::new(),
            webhook_tolerance: Duration::from_secs(5 * 60),
            embedding: EmbeddingSettings::default(),
        }
    }
}

impl KnowledgeSettings {
    /// Returns the outbound guard policy for fetching knowledge sources.
    pub fn fetch_policy(&self) -> Policy {
        let mut allowed_ports = vec![443];
        if self.allow_http {
            allowed_ports.push(80);
        }
        allowed_ports.extend(self.extra_ports.iter().copied());
        Policy {
            https_only: !self.allow_http,
            allowed_ports,
            allowed_hosts: self.allowed_hosts.clone(),
            loopback_exceptions: self.loopback_exceptions.clone(),
            total_timeout: self.fetch_timeout,
            max_redirects: 5,
            max_body_bytes: self.max_document_bytes,
            allowed_content_types: FETCH_CONTENT_TYPES.iter().map(|t| t.to_string()).collect(),
            ..Policy::default()
        }
    }
}
