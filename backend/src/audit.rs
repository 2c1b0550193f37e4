//! The audit trail: an append-only, hash-chained record of who did what.
//!
//! The database does the chaining: a trigger numbers each tenant's rows and hashes every row
//! together with the previous row's hash, and other triggers refuse updates and deletes. So
//! every writer gets the same chain, and `verify` recomputes it to find the first broken row.

use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user or token owner.
    User {
        /// The user's id.
        id: Uuid,
        /// The user's email, kept so the trail reads without joins.
        email: String,
    },
    /// The product itself (a job or a schedule).
    System,
    /// An operator at the command line.
    Operator,
}

impl Actor {
    fn id(&self) -> Option<Uuid> {
        match self {
            Actor::User { id, .. } => Some(*id),
            _ => None,
        }
    }

    fn label(&self) -> &str {
        match self {
            Actor::User { email, .. } => email,
            Actor::System => "system",
            Actor::Operator => "operator (command line)",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// The tenant whose chain the event joins.
    pub tenant_id: Uuid,
    /// Who acted.
    pub actor: Actor,
    /// A dotted action name, such as `dead_letter.retry`.
    pub action: String,
    /// The kind of thing acted on, such as `dead_letter`.
    pub subject_type: String,
    /// Its id.
    pub subject_id: String,
    /// Anything else worth keeping, such as a reason or the affected ids.
    pub detail: Value,
    /// The client's address, for web requests.
    pub ip: Option<String>,
    /// The client's user agent, for web requests.
    pub user_agent: Option<String>,
    /// The risk score of the change decided on, where there is one.
    pub risk_score: Option<i32>,
    /// The request's correlation id.
    pub correlation_id: Option<String>,
}

impl AuditEvent {
    /// Creates an event with no client details.
    pub fn new(
        tenant_id: Uuid,
        actor: Actor,
        action: &str,
        subject_type: &str,
        subject_id: impl Into<String>,
        detail: Value,
    ) -> Self {
        Self {
            tenant_id,
            actor,
            action: action.to_string(),
            subject_type: subject_type.to_string(),
            subject_id: subject_id.into(),
            detail,
            ip: None,
            user_agent: None,
            risk_score: None,
            correlation_id: None,
        }
    }

    /// Adds the client's address, user agent and the request's correlation id.
    pub fn client(
        mut self,
        ip: Option<String>,
        user_agent: Option<String>,
        correlation_id: Option<String>,
    ) -> Self {
        self.ip = ip;
        self.user_agent = user_agent;
        self.correlation_id = correlation_id;
        self
    }
}

/// Appends an event inside the caller's transaction and returns its position in the chain.
/// The trigger holds a per-tenant lock until the transaction ends, so keep it short.
pub async fn record(conn: &mut PgConnection, event: &AuditEvent) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO audit_log (tenant_id, actor_id, actor_label, action, subject_type, \
                                subject_id, detail, ip, user_agent, risk_score, correlation_id, \
                                seq, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, '', '') \
         RETURNING seq",
    )
    .bind(event.tenant_id)
    .bind(event.actor.id())
    .bind(event.actor.label())
    .bind(&event.action)
    .bind(&event.subject_type)
    .bind(&event.subject_id)
    .bind(&event.detail)
    .bind(&event.ip)
    .bind(&event.user_agent)
    .bind(event.risk_score)
    .bind(&event.correlation_id)
    .fetch_one(conn)
    .await
}

/// One row of the trail.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Position in the tenant's chain.
    pub seq: i64,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The acting user's id, if a user acted.
    pub actor_id: Option<Uuid>,
    /// The actor's email, or `system` or `operator (command line)`.
    pub actor: String,
    /// Dotted action name.
    pub action: String,
    /// Kind of subject.
    pub subject_type: String,
    /// Subject id.
    pub subject_id: String,
    /// Extra facts.
    pub detail: Value,
    /// Client address.
    pub ip: Option<String>,
    /// Correlation id of the request.
    pub correlation_id: Option<String>,
    /// The row's hash.
    pub hash: String,
}

/// Lists a tenant's trail, newest first, optionally for one subject id or one actor.
pub async fn list(
    pool: &PgPool,
    tenant_id: Uuid,
    subject_id: Option<&str>,
    actor_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, occurred_at, actor_id, actor_label, action, subject_type, subject_id, \
                detail, ip, correlation_id, hash \
           FROM audit_log \
          WHERE tenant_id = $1 \
            AND ($2::text IS NULL OR subject_id = $2) \
            AND ($3::uuid IS NULL OR actor_id = $3) \
          ORDER BY seq DESC LIMIT $4",
    )
    .bind(tenant_id)
    .bind(subject_id)
    .bind(actor_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| AuditEntry {
            seq: row.get("seq"),
            occurred_at: row.get("occurred_at"),
            actor_id: row.get("actor_id"),
            actor: row.get("actor_label"),
            action: row.get("action"),
            subject_type: row.get("subject_type"),
            subject_id: row.get("subject_id"),
            detail: row.get("detail"),
            ip: row.get("ip"),
            correlation_id: row.get("correlation_id"),
            hash: row.get("hash"),
        })
        .collect())
}

/// The result of checking a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    /// Rows checked.
    pub rows: i64,
    /// True when every row's hash matches its content and its predecessor.
    pub intact: bool,
    /// The first row that does not match, when there is one.
    pub first_broken_seq: Option<i64>,
    /// The reason that row does not match.
    pub reason: Option<String>,
}

/// Recomputes the tenant's chain and reports the first row whose content, predecessor hash or
/// position does not match.
pub async fn verify(pool: &PgPool, tenant_id: Uuid) -> Result<Verification, sqlx::Error> {
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_one(pool)
        .await?;
    let broken = sqlx::query(
        "WITH chain AS ( \
            SELECT seq, hash, prev_hash, \
                   row_number() OVER (ORDER BY seq) AS position, \
                   coalesce(lag(hash) OVER (ORDER BY seq), repeat('0', 64)) AS expected_prev, \
                   audit_row_hash(prev_hash, tenant_id, seq, occurred_at, actor_id, actor_label, \
                                  action, subject_type, subject_id, detail, ip, user_agent, \
                                  risk_score, correlation_id) AS recomputed \
              FROM audit_log WHERE tenant_id = $1) \
         SELECT seq, position, \
                CASE WHEN seq <> position THEN 'a row is missing before this one' \
                     WHEN prev_hash <> expected_prev \
                          THEN 'its previous-row hash does not match the row before it' \
                     ELSE 'its content does not match its hash' END AS reason \
           FROM chain \
          WHERE seq <> position OR prev_hash <> expected_prev OR hash <> recomputed \
          ORDER BY seq LIMIT 1",
    )
    .bind(tenant_id)
    .fetch_optional(pool)
    .await?;
    Ok(match broken {
        Some(row) => Verification {
            rows,
            intact: false,
            first_broken_seq: Some(row.get("seq")),
            reason: Some(row.get("reason")),
        },
        None => Verification {
            rows,
            intact: true,
            first_broken_seq: None,
            reason: None,
        },
    })
}
