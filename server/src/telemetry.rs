//! Logging set-up, done once per process.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber with `default_filter`, which `RUST_LOG` overrides.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            // The whole span list, so the request span's correlation id stays on every line even
            // when a library's own span is the innermost one.
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second call (tests start several apps in one process) keeps the first subscriber.
    let _ = result;
}
