//! Runtime configuration from flags and environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use backend::settings::Settings;
use clap::{Args, ValueEnum};

/// Format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Options every subcommand that touches the database shares.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL URL, e.g. postgres://user@127.0.0.1:5432/siteline. `make run` sets it to the
    /// project-local cluster when unset.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Largest number of pooled database connections per process.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
}

/// Options of the web server.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Address and port to listen on.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Directory holding the built site (`pkg/` with the wasm, JavaScript and CSS).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,

    /// Mark session cookies `Secure`; turn on whenever users reach the site over https.
    #[arg(long, env = "SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,

    /// Extra origins trusted for cookie-authenticated writes, comma-separated
    /// (e.g. https://siteline.example.com behind a proxy that rewrites Host).
    #[arg(long, env = "TRUSTED_ORIGINS", value_delimiter = ',')]
    pub trusted_origins: Vec<String>,

    /// Minutes without a request after which a session ends.
    #[arg(long, env = "SESSION_IDLE_MINUTES", default_value_t = 30)]
    pub session_idle_minutes: u64,

    /// Hours after sign-in after which a session ends, however active.
    #[arg(long, env = "SESSION_ABSOLUTE_HOURS", default_value_t = 12)]
    pub session_absolute_hours: u64,

    /// Failed sign-ins allowed per account and per client address inside the window.
    #[arg(long, env = "LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// Length of the failed sign-in window, in minutes.
    #[arg(long, env = "LOGIN_WINDOW_MINUTES", default_value_t = 15)]
    pub login_window_minutes: u64,

    /// Largest JSON request body, in KiB.
    #[arg(long, env = "JSON_BODY_LIMIT_KB", default_value_t = 256)]
    pub json_body_limit_kb: usize,
}

impl WebArgs {
    /// Builds the backend settings these options describe.
    pub fn settings(&self) -> Settings {
        Settings {
            session_idle_timeout: Duration::from_secs(self.session_idle_minutes * 60),
            session_absolute_timeout: Duration::from_secs(self.session_absolute_hours * 3600),
            login_max_failures: self.login_max_failures,
            login_window: Duration::from_secs(self.login_window_minutes * 60),
            json_body_limit: self.json_body_limit_kb * 1024,
            trusted_origins: self
                .trusted_origins
                .iter()
                .map(|origin| origin.trim().to_string())
                .filter(|origin| !origin.is_empty())
                .collect(),
            secure_cookies: self.secure_cookies,
        }
    }
}

/// Options of the background workers.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Seconds between upkeep jobs (deleting expired sessions and old login attempts) that
    /// each worker process queues.
    #[arg(long, env = "SESSION_CLEANUP_SECONDS", default_value_t = 300)]
    pub session_cleanup_seconds: u64,
}
