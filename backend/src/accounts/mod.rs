//! Tenants, users, roles, passwords, personal API tokens and sign-in.

mod login;
mod password;
mod tokens;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::http::ApiError;
use crate::ids::{TenantId, UserId};

pub use login::{login, prune_login_attempts, LoginError};
pub use password::{generate_password, hash_password, verify_password, MIN_PASSWORD_CHARS};
pub use tokens::{create_token, principal_for_token, NewToken};

/// A user's permission set inside their tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Facility manager: chats about sites and submits changes.
    Manager,
    /// Approves or rejects change sets and knowledge documents.
    Approver,
    /// Manages users, knowledge sources, dead letters and providers.
    Admin,
}

impl Role {
    /// Every role, in display order.
    pub const ALL: [Role; 3] = [Role::Manager, Role::Approver, Role::Admin];

    /// Returns the role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or typed role name.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == raw.trim())
            .ok_or_else(|| {
                ApiError::invalid("role", raw, "role must be one of manager, approver, admin")
            })
    }
}

/// A validated, lowercased email address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    /// Trims and lowercases `raw`, and checks it has the shape `local@domain.tld`.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if valid {
            Ok(Self(email))
        } else {
            Err(ApiError::invalid(
                "email",
                raw,
                "email must look like name@example.com",
            ))
        }
    }

    /// Returns the address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tenant {
    /// The tenant's id.
    pub id: TenantId,
    /// Short name used by the CLI.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// The authenticated caller of a request: who they are, their tenant and their roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Principal {
    /// The user's id.
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    /// The user's tenant; every query the caller makes is scoped to it.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// The tenant's slug.
    pub tenant_slug: String,
    /// The tenant's display name.
    pub tenant_name: String,
    /// The user's email.
    pub email: String,
    /// The user's roles.
    pub roles: Vec<Role>,
}

impl Principal {
    /// Checks whether the caller has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Returns 403 unless the caller has one of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|role| self.has(*role)) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
        Err(ApiError::Forbidden(format!(
            "this needs the {} role; ask an admin of {} to grant it",
            names.join(" or "),
            self.tenant_name
        )))
    }

    /// Returns the tenant scope that every tenant-owned query takes.
    pub fn scope(&self) -> Scope {
        Scope(self.tenant_id)
    }
}

/// Proof of which tenant a query may read. Tenant-owned data is reached only through functions
/// that take a `Scope`, and a `Scope` comes from an authenticated `Principal` (or, for operator
/// commands, from a tenant looked up by slug), so a query cannot forget its tenant filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope(TenantId);

impl Scope {
    /// Returns the tenant this scope allows.
    pub fn tenant_id(self) -> TenantId {
        self.0
    }
}

/// A user as listed to admins.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UserSummary {
    /// The user's id.
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    /// The user's email.
    pub email: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
}

/// Creates a tenant; returns 409 when the slug is taken.
pub async fn create_tenant(pool: &PgPool, slug: &str, name: &str) -> Result<Tenant, ApiError> {
    let slug = slug.trim().to_lowercase();
    let valid_slug = (2..=63).contains(&slug.len())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-');
    if !valid_slug {
        return Err(ApiError::invalid(
            "slug",
            &slug,
            "slug must be 2-63 lowercase letters, digits or dashes, not starting with a dash",
        ));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid(
            "name",
            name,
            "name must be 1-200 characters",
        ));
    }

    let inserted = sqlx::query_as::<_, Tenant>(
        "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3)
         ON CONFLICT (slug) DO NOTHING
         RETURNING id, slug, name",
    )
    .bind(TenantId::new())
    .bind(&slug)
    .bind(name)
    .fetch_optional(pool)
    .await?;
    inserted.ok_or_else(|| ApiError::Conflict {
        message: format!("a tenant with slug {slug} already exists; choose another slug"),
        existing_id: None,
    })
}

/// Finds a tenant by slug.
pub async fn tenant_by_slug(pool: &PgPool, slug: &str) -> Result<Option<Tenant>, ApiError> {
    let tenant = sqlx::query_as::<_, Tenant>("SELECT id, slug, name FROM tenants WHERE slug = $1")
        .bind(slug.trim().to_lowercase())
        .fetch_optional(pool)
        .await?;
    Ok(tenant)
}

impl Tenant {
    /// Returns the scope for operator commands acting on this tenant.
    pub fn scope(&self) -> Scope {
        Scope(self.id)
    }
}

/// Creates a user in the scoped tenant; returns 409 when the email is taken.
pub async fn create_user(
    pool: &PgPool,
    scope: Scope,
    email: &Email,
    roles: &[Role],
    password: &str,
) -> Result<UserId, ApiError> {
    if roles.is_empty() {
        return Err(ApiError::invalid("role", "", "give at least one role"));
    }
    let hash = hash_password(password)?;
    let names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();

    let id: Option<UserId> = sqlx::query_scalar(
        "INSERT INTO users (id, tenant_id, email, roles, password_hash)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (email) DO NOTHING
         RETURNING id",
    )
    .bind(UserId::new())
    .bind(scope.tenant_id())
    .bind(email.as_str())
    .bind(&names)
    .bind(hash)
    .fetch_optional(pool)
    .await?;
    id.ok_or_else(|| ApiError::Conflict {
        message: format!("a user with email {} already exists", email.as_str()),
        existing_id: None,
    })
}

/// Loads the principal of an enabled user, or `None` when the user is unknown or disabled.
pub async fn load_principal(pool: &PgPool, user_id: UserId) -> Result<Option<Principal>, ApiError> {
    let row: Option<(UserId, TenantId, String, String, String, Vec<String>)> = sqlx::query_as(
        "SELECT u.id, u.tenant_id, t.slug, t.name, u.email, u.roles
         FROM users u JOIN tenants t ON t.id = u.tenant_id
         WHERE u.id = $1 AND u.disabled_at IS NULL",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(principal_from_row))
}

fn principal_from_row(row: (UserId, TenantId, String, String, String, Vec<String>)) -> Principal {
    let (user_id, tenant_id, tenant_slug, tenant_name, email, roles) = row;
    Principal {
        user_id,
        tenant_id,
        tenant_slug,
        tenant_name,
        email,
        // The table's check constraint admits only known names, so nothing is dropped here.
        roles: roles
            .iter()
            .filter_map(|name| Role::parse(name).ok())
            .collect(),
    }
}

/// Finds a user of the scoped tenant; another tenant's user returns 404 like an unknown one.
pub async fn find_user(pool: &PgPool, scope: Scope, id: UserId) -> Result<UserSummary, ApiError> {
    sqlx::query_as::<_, UserSummary>(
        "SELECT id, email, roles, created_at FROM users WHERE tenant_id = $1 AND id = $2",
    )
    .bind(scope.tenant_id())
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no user {id} in this tenant")))
}

/// Lists the users of the scoped tenant, oldest first.
pub async fn list_users(pool: &PgPool, scope: Scope) -> Result<Vec<UserSummary>, ApiError> {
    let users = sqlx::query_as::<_, UserSummary>(
        "SELECT id, email, roles, created_at FROM users WHERE tenant_id = $1
         ORDER BY created_at, email",
    )
    .bind(scope.tenant_id())
    .fetch_all(pool)
    .await?;
    Ok(users)
}

/// Finds a user id by email across tenants, for operator commands.
pub async fn user_id_by_email(pool: &PgPool, email: &Email) -> Result<Option<UserId>, ApiError> {
    let id = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(id)
}

/// Replaces the password of the user with `email` and ends that user's sessions, so a session
/// opened with the old password does not outlive it. Returns `false` when there is no such user.
pub async fn set_password(pool: &PgPool, email: &Email, password: &str) -> Result<bool, ApiError> {
    let hash = hash_password(password)?;
    let mut tx = pool.begin().await?;
    let user_id: Option<UserId> =
        sqlx::query_scalar("UPDATE users SET password_hash = $1 WHERE email = $2 RETURNING id")
            .bind(hash)
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    let Some(user_id) = user_id else {
        return Ok(false);
    };

    // Session data is the session map as JSON; the signed-in user's id is stored as a string.
    sqlx::query("DELETE FROM sessions WHERE data->>'user_id' = $1")
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_lowercased_and_trimmed() {
        let email = Email::parse("  Manager@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "manager@example.com");
    }

    #[test]
    fn email_rejects_bad_shapes() {
        for raw in [
            "",
            "no-at-sign",
            "a@b",
            "a@.com",
            "a b@c.com",
            "@x.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(raw).is_err(), "accepted {raw:?}");
        }
    }

    #[test]
    fn role_parse_names_the_choices() {
        assert_eq!(Role::parse("approver").unwrap(), Role::Approver);
        let error = Role::parse("root").unwrap_err();
        assert!(error.body().error.contains("manager, approver, admin"));
    }

    #[test]
    fn require_any_refuses_missing_role() {
        let principal = Principal {
            user_id: UserId::new(),
            tenant_id: TenantId::new(),
            tenant_slug: "acme".into(),
            tenant_name: "Acme".into(),
            email: "m@acme.test".into(),
            roles: vec![Role::Manager],
        };
        assert!(principal.require_any(&[Role::Manager]).is_ok());
        let error = principal.require_any(&[Role::Admin]).unwrap_err();
        assert_eq!(error.status(), axum::http::StatusCode::FORBIDDEN);
    }
}
