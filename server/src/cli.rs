//! The command line: subcommands, their flags, and what each runs.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use backend::accounts::Role;
use backend::conversations::lifecycle::ConversationSettings;
use backend::jobs::Services;
use backend::knowledge::embed::{
    Embedder, EmbeddingBackend, ProviderEmbedder, EMBEDDING_DIMENSIONS,
};
use backend::knowledge::{KnowledgeSettings, LazyEmbedder};
use backend::providers::Gateway;
use backend::AppState;
use clap::{Parser, Subcommand, ValueEnum};
use leptos::config::LeptosOptions;

use crate::config::{
    ConversationArgs, DbArgs, KnowledgeArgs, LogFormat, ProviderArgs, WebArgs, WorkerArgs,
};
use crate::{dead_letter_ops, ops, router, telemetry, workers};
use backend::jobs::dead_letters::Filter;
use backend::jobs::demo::DemoArgs;

/// Siteline: conversational onboarding for facility management.
///
/// Every flag can also be set through the environment variable shown with it.
#[derive(Debug, Parser)]
#[command(name = "server", version)]
pub struct Cli {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    pub log_format: LogFormat,

    /// Subcommand to run, `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
// The command line is parsed once at start-up, so the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server and the background workers in one process (the default).
    Serve {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        web: WebArgs,
        #[command(flatten)]
        providers: ProviderArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        knowledge: KnowledgeArgs,
        #[command(flatten)]
        conversations: ConversationArgs,
    },
    /// Run only the web server; scale it out beside separate `worker` processes.
    Web {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        web: WebArgs,
        #[command(flatten)]
        providers: ProviderArgs,
        #[command(flatten)]
        knowledge: KnowledgeArgs,
        #[command(flatten)]
        conversations: ConversationArgs,
    },
    /// Run only the background workers.
    Worker {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        providers: ProviderArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        knowledge: KnowledgeArgs,
        #[command(flatten)]
        conversations: ConversationArgs,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Work the dead-letter queue: list, show, retry, discard.
    DeadLetters {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
    /// Queue jobs by hand (for tests and demos).
    Jobs {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Operator commands: tenants, users, tokens, demo data.
    Admin {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// Role names accepted on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Facility manager.
    Manager,
    /// Approver of change sets and documents.
    Approver,
    /// Administrator.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Manager => Role::Manager,
            RoleArg::Approver => Role::Approver,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// Operator subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a tenant.
    CreateTenant {
        /// Short name: lowercase letters, digits and dashes.
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Create a user in a tenant; prints a generated password unless --password-stdin.
    CreateUser {
        /// Slug of the user's tenant.
        #[arg(long)]
        tenant: String,
        /// Email used to sign in.
        #[arg(long)]
        email: String,
        /// Role; repeat the flag for several roles.
        #[arg(long = "role", value_enum, required = true)]
        roles: Vec<RoleArg>,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create a personal API token for a user and print it once.
    CreateToken {
        /// Email of the token's owner.
        #[arg(long)]
        email: String,
        /// A name to recognise the token by.
        #[arg(long)]
        name: String,
    },
    /// Set a user's password; prints a generated one unless --password-stdin.
    SetPassword {
        /// Email of the user.
        #[arg(long)]
        email: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create the demo tenant and its users when missing (used by `make run`).
    SeedDemo,
    /// Ingest and publish the demo's knowledge guides into the demo tenant, skipping guides
    /// already there (used by `make run`).
    SeedDemoKnowledge {
        /// Folder of the Markdown guides.
        #[arg(long, default_value = "docs/knowledge")]
        dir: std::path::PathBuf,
        #[command(flatten)]
        knowledge: KnowledgeArgs,
    },
}

/// Dead-letter subcommands. They act on every tenant's dead letters, and each action is
/// recorded in the owning tenant's audit trail as done by the command line.
#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// List dead letters, newest first.
    List {
        /// Only this job kind, e.g. demo.fail.
        #[arg(long)]
        kind: Option<String>,
        /// Only this error class: database, network, model_provider, rate_limited,
        /// circuit_open or permanent.
        #[arg(long)]
        class: Option<String>,
        /// Only critical (true) or non-critical (false) ones.
        #[arg(long)]
        critical: Option<bool>,
        /// open (default), retried, discarded or all.
        #[arg(long, default_value = "open")]
        status: String,
        /// Text to find in the payload or the error.
        #[arg(long)]
        search: Option<String>,
        /// Largest number of rows to print (at most 200).
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Print one dead letter with its error chain, attempts and payload.
    Show {
        /// Dead letter id.
        id: String,
    },
    /// Queue the jobs of the given dead letters again; ids already retried are skipped.
    Retry {
        /// Dead letter ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Close a dead letter without running its job again.
    Discard {
        /// Dead letter id.
        id: String,
        /// The reason the job should not run again (kept in the audit trail).
        #[arg(long)]
        reason: String,
    },
}

/// Job subcommands.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Queue a demo.fail job, which fails on demand; workers run it only with DEMO_JOBS=true.
    DemoFail {
        /// Slug of the owning tenant.
        #[arg(long)]
        tenant: String,
        /// Attempts that fail before one succeeds; all fail when omitted.
        #[arg(long)]
        fail_attempts: Option<i32>,
        /// Error class of the failures (default permanent).
        #[arg(long)]
        class: Option<String>,
        /// Milliseconds each attempt sleeps before failing or succeeding.
        #[arg(long)]
        sleep_ms: Option<u64>,
    },
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = match cli.command {
        Some(command) => command,
        // `server` with no subcommand behaves as `server serve`, taking flags from the environment.
        None => Cli::parse_from(["server", "serve"])
            .command
            .expect("serve parses"),
    };
    let is_admin = matches!(
        command,
        Command::Admin { .. }
            | Command::Migrate { .. }
            | Command::DeadLetters { .. }
            | Command::Jobs { .. }
    );
    // Operator commands print their results; their logs show warnings only unless RUST_LOG
    // requests more, so the demo seed's workers do not drown its progress lines.
    if is_admin {
        telemetry::init(LogFormat::Text, "warn");
    } else {
        telemetry::init(cli.log_format, "info,sqlx=warn,tower_sessions=warn");
    }

    match command {
        Command::Serve {
            db,
            web,
            providers,
            worker,
            knowledge,
            conversations,
        } => {
            let pool = backend::db::connect(&db.database_url, db.db_max_connections).await?;
            let knowledge = knowledge.settings()?;
            let conversations = conversations.settings()?;
            let gateway = provider_gateway(&pool, &providers)?;
            let embedder = knowledge_embedder(&knowledge, &providers, &gateway)?;
            let state = AppState::new(pool.clone(), web_settings(&web, &knowledge, &conversations))
                .with_providers(gateway.clone())
                .with_embedder(embedder.clone());
            let jobs = job_settings(&worker, &knowledge, &conversations)?;
            let services = Services { embedder, gateway };
            // try_join: when the web server fails (say its port is taken) the workers stop too,
            // and the error reaches the terminal instead of the process idling on.
            let web_task = serve_web(state, &web);
            let worker_task = workers::run_with_services(pool, jobs, services, shutdown_signal());
            tokio::try_join!(web_task, worker_task).map(|_| ())
        }
        Command::Web {
            db,
            web,
            providers,
            knowledge,
            conversations,
        } => {
            let pool = backend::db::connect(&db.database_url, db.db_max_connections).await?;
            let gateway = provider_gateway(&pool, &providers)?;
            let knowledge = knowledge.settings()?;
            let conversations = conversations.settings()?;
            let embedder = knowledge_embedder(&knowledge, &providers, &gateway)?;
            let state = AppState::new(pool, web_settings(&web, &knowledge, &conversations))
                .with_providers(gateway)
                .with_embedder(embedder);
            serve_web(state, &web).await
        }
        Command::Worker {
            db,
            providers,
            worker,
            knowledge,
            conversations,
        } => {
            let pool = backend::db::connect(&db.database_url, db.db_max_connections).await?;
            let knowledge = knowledge.settings()?;
            let conversations = conversations.settings()?;
            let gateway = provider_gateway(&pool, &providers)?;
            let services = Services {
                embedder: knowledge_embedder(&knowledge, &providers, &gateway)?,
                gateway,
            };
            let jobs = job_settings(&worker, &knowledge, &conversations)?;
            workers::run_with_services(pool, jobs, services, shutdown_signal()).await
        }
        Command::Migrate { db } => {
            let pool = backend::db::connect(&db.database_url, 2).await?;
            backend::db::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin { db, command } => {
            // The knowledge seed runs workers, which hold several connections at once.
            let pool = backend::db::connect(&db.database_url, db.db_max_connections).await?;
            run_admin(&pool, command).await
        }
        Command::DeadLetters { db, command } => {
            let pool = backend::db::connect(&db.database_url, 2).await?;
            run_dead_letters(&pool, command).await
        }
        Command::Jobs { db, command } => {
            let pool = backend::db::connect(&db.database_url, 2).await?;
            match command {
                JobsCommand::DemoFail {
                    tenant,
                    fail_attempts,
                    class,
                    sleep_ms,
                } => {
                    let class = class
                        .as_deref()
                        .map(dead_letter_ops::parse_class)
                        .transpose()?;
                    let args = DemoArgs {
                        fail_attempts,
                        class,
                        sleep_ms,
                        ..DemoArgs::default()
                    };
                    dead_letter_ops::queue_demo(&pool, &tenant, args).await
                }
            }
        }
    }
}

fn web_settings(
    web: &WebArgs,
    knowledge: &KnowledgeSettings,
    conversations: &ConversationSettings,
) -> backend::settings::Settings {
    backend::settings::Settings {
        knowledge: knowledge.clone(),
        conversations: *conversations,
        ..web.settings()
    }
}

fn job_settings(
    worker: &WorkerArgs,
    knowledge: &KnowledgeSettings,
    conversations: &ConversationSettings,
) -> anyhow::Result<backend::jobs::JobSettings> {
    Ok(backend::jobs::JobSettings {
        knowledge: knowledge.clone(),
        conversations: *conversations,
        ..worker.settings()?
    })
}

/// Builds the embedder the knowledge settings select: the local model, loaded on first use, or
/// the OpenAI-compatible server's embeddings endpoint, whose calls for a tenant go through the
/// gateway's breaker, limits, budget and call records.
fn knowledge_embedder(
    knowledge: &KnowledgeSettings,
    providers: &ProviderArgs,
    gateway: &Arc<Gateway>,
) -> anyhow::Result<Arc<dyn Embedder>> {
    match knowledge.embedding.backend {
        EmbeddingBackend::Local => Ok(Arc::new(LazyEmbedder::local(knowledge.embedding.clone()))),
        EmbeddingBackend::OpenAi => {
            let provider = providers.embedding_provider()?;
            let embedder = ProviderEmbedder::new(
                provider.provider,
                provider.model_id,
                EMBEDDING_DIMENSIONS,
                knowledge.embedding.batch_size,
            )
            .map_err(|error| anyhow::anyhow!("the embedding settings are invalid: {error}"))?
            .with_gateway(Arc::clone(gateway));
            Ok(Arc::new(embedder))
        }
    }
}

/// Builds the model provider chain from the environment and logs it (never the keys).
fn provider_gateway(pool: &sqlx::PgPool, args: &ProviderArgs) -> anyhow::Result<Arc<Gateway>> {
    let settings = args.settings()?;
    let gateway = Gateway::from_settings(pool.clone(), &settings)
        .map_err(|error| anyhow::anyhow!("the model provider settings are invalid: {error}"))?;
    let chain: Vec<&str> = gateway.chain().iter().map(|kind| kind.as_str()).collect();
    tracing::info!(
        chain = chain.join(","),
        monthly_token_budget = settings.monthly_token_budget,
        requests_per_minute = settings.rate_limits.requests_per_minute,
        tokens_per_minute = settings.rate_limits.tokens_per_minute,
        "model providers configured"
    );
    Ok(Arc::new(gateway))
}

async fn run_admin(pool: &sqlx::PgPool, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateTenant { slug, name } => ops::create_tenant(pool, &slug, &name).await,
        AdminCommand::CreateUser {
            tenant,
            email,
            roles,
            password_stdin,
        } => {
            let roles: Vec<Role> = roles.into_iter().map(Role::from).collect();
            let password = password_stdin.then(read_password).transpose()?;
            ops::create_user(pool, &tenant, &email, &roles, password).await
        }
        AdminCommand::CreateToken { email, name } => ops::create_token(pool, &email, &name).await,
        AdminCommand::SetPassword {
            email,
            password_stdin,
        } => {
            let password = password_stdin.then(read_password).transpose()?;
            ops::set_password(pool, &email, password).await
        }
        AdminCommand::SeedDemo => ops::seed_demo(pool).await,
        AdminCommand::SeedDemoKnowledge { dir, knowledge } => {
            let jobs = backend::jobs::JobSettings {
                knowledge: knowledge.settings()?,
                poll_interval: Duration::from_millis(200),
                ..backend::jobs::JobSettings::default()
            };
            crate::demo_knowledge::seed(pool, jobs, &dir).await
        }
    }
}

async fn run_dead_letters(pool: &sqlx::PgPool, command: DeadLetterCommand) -> anyhow::Result<()> {
    match command {
        DeadLetterCommand::List {
            kind,
            class,
            critical,
            status,
            search,
            limit,
        } => {
            if !["open", "retried", "discarded", "all"].contains(&status.as_str()) {
                anyhow::bail!("unknown status '{status}'; use open, retried, discarded or all");
            }
            let filter = Filter {
                kind,
                class: class
                    .as_deref()
                    .map(dead_letter_ops::parse_class)
                    .transpose()?,
                critical,
                status: Some(status),
                search,
                limit: Some(limit),
                ..Filter::default()
            };
            dead_letter_ops::list(pool, &filter).await
        }
        DeadLetterCommand::Show { id } => {
            dead_letter_ops::show(pool, dead_letter_ops::parse_id(&id)?).await
        }
        DeadLetterCommand::Retry { ids } => {
            let ids = ids
                .iter()
                .map(|id| dead_letter_ops::parse_id(id))
                .collect::<anyhow::Result<Vec<_>>>()?;
            dead_letter_ops::retry(pool, &ids).await
        }
        DeadLetterCommand::Discard { id, reason } => {
            dead_letter_ops::discard(pool, dead_letter_ops::parse_id(&id)?, &reason).await
        }
    }
}

/// Reads a password from standard input, without its trailing newline.
fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        anyhow::bail!(
            "--password-stdin was given but standard input was empty; pipe the password in"
        );
    }
    Ok(password)
}

/// Builds the Leptos options for the site built into `web.site_root`.
pub fn leptos_options(web: &WebArgs) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("siteline")
        .site_root(web.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(web.addr)
        .build()
}

/// Serves HTTP until a shutdown signal arrives.
async fn serve_web(state: AppState, web: &WebArgs) -> anyhow::Result<()> {
    let app = router::build(state, leptos_options(web));
    let listener = tokio::net::TcpListener::bind(web.addr)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "cannot listen on {}: {error}; set LEPTOS_SITE_ADDR to a free address",
                web.addr
            )
        })?;
    tracing::info!(addr = %web.addr, "listening on http://{}", web.addr);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
