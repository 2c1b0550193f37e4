//! Policy numbers that operators may change, with the product's defaults in one place.

use std::time::Duration;

use crate::knowledge::KnowledgeSettings;

/// Every configurable policy number the backend enforces.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A session ends after this long without a request.
    pub session_idle_timeout: Duration,
    /// A session ends this long after sign-in, however active it is.
    pub session_absolute_timeout: Duration,
    /// Failed logins allowed per account and per client address inside `login_window`.
    pub login_max_failures: u32,
    /// The sliding window over which failed logins are counted.
    pub login_window: Duration,
    /// Largest JSON request body accepted by the REST API, in bytes.
    pub json_body_limit: usize,
    /// Extra origins (scheme, host and port) trusted for cookie-authenticated writes, besides
    /// the request's own host; used behind a proxy that rewrites `Host`.
    pub trusted_origins: Vec<String>,
    /// Whether session cookies carry the `Secure` attribute (on when served over https).
    pub secure_cookies: bool,
    /// Limits and switches of the knowledge base.
    pub knowledge: KnowledgeSettings,
    /// Idle and generating time limits of conversations.
    pub conversations: crate::conversations::lifecycle::ConversationSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            session_idle_timeout: Duration::from_secs(30 * 60),
            session_absolute_timeout: Duration::from_secs(12 * 60 * 60),
            login_max_failures: 5,
            login_window: Duration::from_secs(15 * 60),
            json_body_limit: 256 * 1024,
            trusted_origins: Vec::new(),
            secure_cookies: false,
            knowledge: KnowledgeSettings::default(),
            conversations: crate::conversations::lifecycle::ConversationSettings::default(),
        }
    }
}
