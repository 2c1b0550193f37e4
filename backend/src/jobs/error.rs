//! Job failures and the error classes that decide what happens next.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The class of a job failure; each class has its own row in the retry table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Serialization failure, deadlock, lost connection: usually gone on the next try.
    Database,
    /// Connect failures, timeouts and 5xx responses from a remote server.
    Network,
    /// A model provider failed: 5xx, timeout, or output that fails validation after repair.
    ModelProvider,
    /// A remote server responded 429 Too Many Requests.
    RateLimited,
    /// The circuit breaker of a provider is open; the job waits until it half-opens.
    CircuitOpen,
    /// Retrying cannot help: invalid input, not found, refused URL, other 4xx.
    Permanent,
}

impl ErrorClass {
    /// Every class, in the order of the retry table.
    pub const ALL: [ErrorClass; 6] = [
        ErrorClass::Database,
        ErrorClass::Network,
        ErrorClass::ModelProvider,
        ErrorClass::RateLimited,
        ErrorClass::CircuitOpen,
        ErrorClass::Permanent,
    ];

    /// Returns the stable name stored in the database and shown in filters.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Database => "database",
            ErrorClass::Network => "network",
            ErrorClass::ModelProvider => "model_provider",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::CircuitOpen => "circuit_open",
            ErrorClass::Permanent => "permanent",
        }
    }

    /// Parses a stored or user-given class name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.as_str() == name)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed job attempt: its class, the error chain (outermost first) and, for rate limits and
/// open breakers, how long the remote side asked us to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// Decides retries and delays.
    pub class: ErrorClass,
    /// The error's sentence followed by its causes.
    pub chain: Vec<String>,
    /// A wait requested by the other side (`Retry-After`, the breaker's reopen time).
    pub retry_after: Option<Duration>,
}

impl JobError {
    /// Creates an error of `class` with one message.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            chain: vec![message.into()],
            retry_after: None,
        }
    }

    /// Creates a permanent error: retrying cannot help.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, message)
    }

    /// Creates a network error (connect failure, timeout, 5xx).
    pub fn network(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Network, message)
    }

    /// Creates a 429 error, honouring the server's `Retry-After` when it sent one.
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self {
            retry_after,
            ..Self::new(ErrorClass::RateLimited, message)
        }
    }

    /// Creates an error for an open circuit breaker that half-opens after `reopen_in`.
    pub fn circuit_open(message: impl Into<String>, reopen_in: Duration) -> Self {
        Self {
            retry_after: Some(reopen_in),
            ..Self::new(ErrorClass::CircuitOpen, message)
        }
    }

    /// Creates a model provider error (5xx, timeout, invalid output after repair).
    pub fn model_provider(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::ModelProvider, message)
    }

    /// Adds a sentence of context in front of the chain.
    pub fn context(mut self, message: impl Into<String>) -> Self {
        self.chain.insert(0, message.into());
        self
    }

    /// Returns the outermost sentence.
    pub fn message(&self) -> &str {
        self.chain.first().map(String::as_str).unwrap_or("")
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.class, self.chain.join(": "))
    }
}

impl std::error::Error for JobError {}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        let class = classify_sqlx(&error);
        let mut chain = vec![error.to_string()];
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            let text = cause.to_string();
            if chain.last() != Some(&text) {
                chain.push(text);
            }
            source = cause.source();
        }
        Self {
            class,
            chain,
            retry_after: None,
        }
    }
}

/// SQLSTATEs that a retry resolves: serialization failure, deadlock, lock timeout, the server
/// shutting down or refusing connections for now.
const TRANSIENT_SQLSTATES: [&str; 9] = [
    "40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300", "08000", "08006",
];

/// Sorts a database error into transient (`Database`) or not (`Permanent`): a constraint
/// violation or a bad query fails the same way on every retry.
pub fn classify_sqlx(error: &sqlx::Error) -> ErrorClass {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => ErrorClass::Database,
        sqlx::Error::Database(db) => match db.code() {
            Some(code) if TRANSIENT_SQLSTATES.contains(&code.as_ref()) => ErrorClass::Database,
            _ => ErrorClass::Permanent,
        },
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        for class in ErrorClass::ALL {
            assert_eq!(ErrorClass::parse(class.as_str()), Some(class));
        }
        assert_eq!(ErrorClass::parse("flaky"), None);
    }

    #[test]
    fn pool_timeout_is_database_class() {
        assert_eq!(
            classify_sqlx(&sqlx::Error::PoolTimedOut),
            ErrorClass::Database
        );
        assert_eq!(
            classify_sqlx(&sqlx::Error::RowNotFound),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn context_goes_first() {
        let error = JobError::network("connection refused").context("fetching the document");
        assert_eq!(error.message(), "fetching the document");
        assert_eq!(
            error.to_string(),
            "network error: fetching the document: connection refused"
        );
    }
}
