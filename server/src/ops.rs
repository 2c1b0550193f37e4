//! Operator commands: tenants, users, tokens and the demo data.

use backend::accounts::{self, Email, Role};
use backend::http::ApiError;
use sqlx::PgPool;

/// Slug of the demo tenant that `make run` seeds.
pub const DEMO_TENANT: &str = "demo";

/// Turns an API error into a message for the terminal.
pub(crate) fn cli_error(error: ApiError) -> anyhow::Error {
    match error {
        ApiError::Internal(cause) => cause,
        other => anyhow::anyhow!(other.body().error),
    }
}

/// Creates a tenant and prints its id.
pub async fn create_tenant(pool: &PgPool, slug: &str, name: &str) -> anyhow::Result<()> {
    let tenant = accounts::create_tenant(pool, slug, name)
        .await
        .map_err(cli_error)?;
    println!(
        "created tenant {} ({}) with id {}",
        tenant.slug, tenant.name, tenant.id
    );
    Ok(())
}

/// Creates a user; prints a generated password unless one was given.
pub async fn create_user(
    pool: &PgPool,
    tenant_slug: &str,
    email: &str,
    roles: &[Role],
    password: Option<String>,
) -> anyhow::Result<()> {
    let tenant = accounts::tenant_by_slug(pool, tenant_slug)
        .await
        .map_err(cli_error)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no tenant with slug {tenant_slug}; create it with `server admin create-tenant`"
            )
        })?;
    let email = Email::parse(email).map_err(cli_error)?;
    let generated = password.is_none();
    let password = password.unwrap_or_else(accounts::generate_password);
    let id = accounts::create_user(pool, tenant.scope(), &email, roles, &password)
        .await
        .map_err(cli_error)?;

    let names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
    println!(
        "created user {} ({}) in {} with id {id}",
        email.as_str(),
        names.join(", "),
        tenant.slug
    );
    if generated {
        println!("password (shown once): {password}");
    }
    Ok(())
}

/// Creates a personal API token and prints it once.
pub async fn create_token(pool: &PgPool, email: &str, name: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(cli_error)?;
    let token = accounts::create_token(pool, &email, name)
        .await
        .map_err(cli_error)?;
    println!(
        "token {} for {} (shown once; only its hash is stored):",
        token.id,
        email.as_str()
    );
    println!("{}", token.token);
    Ok(())
}

/// Creates the demo tenant and its users (a manager, two approvers and an admin) when missing,
/// printing new passwords once.
/// Running it again changes nothing.
pub async fn seed_demo(pool: &PgPool) -> anyhow::Result<()> {
    let tenant = match accounts::tenant_by_slug(pool, DEMO_TENANT)
        .await
        .map_err(cli_error)?
    {
        Some(tenant) => tenant,
        None => accounts::create_tenant(pool, DEMO_TENANT, "Demo Facilities")
            .await
            .map_err(cli_error)?,
    };

    // Two approvers, because high-risk change sets and knowledge publication need two
    // distinct people.
    let people = [
        ("manager", Role::Manager),
        ("approver", Role::Approver),
        ("approver2", Role::Approver),
        ("admin", Role::Admin),
    ];
    for (label, role) in people {
        let email = Email::parse(&format!("{label}@demo.siteline.test")).map_err(cli_error)?;
        if accounts::user_id_by_email(pool, &email)
            .await
            .map_err(cli_error)?
            .is_some()
        {
            println!(
                "demo {label:<9} {}  (exists; password unchanged)",
                email.as_str()
            );
            continue;
        }
        let password = accounts::generate_password();
        accounts::create_user(pool, tenant.scope(), &email, &[role], &password)
            .await
            .map_err(cli_error)?;
        println!(
            "demo {label:<9} {}  password: {password}  (shown once)",
            email.as_str()
        );
    }
    Ok(())
}

/// Sets a new password for a user; prints a generated one unless one was given.
pub async fn set_password(
    pool: &PgPool,
    email: &str,
    password: Option<String>,
) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(cli_error)?;
    let generated = password.is_none();
    let password = password.unwrap_or_else(accounts::generate_password);
    let updated = accounts::set_password(pool, &email, &password)
        .await
        .map_err(cli_error)?;
    if !updated {
        anyhow::bail!("no user with email {}", email.as_str());
    }
    println!("password changed for {}", email.as_str());
    if generated {
        println!("password (shown once): {password}");
    }
    Ok(())
}
