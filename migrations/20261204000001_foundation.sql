-- Foundation: tenants, users, personal API tokens, login throttling, browser sessions, and the
-- conversation sessions that later features build on.

-- pgvector backs the knowledge index; creating it here makes a missing extension fail at the
-- first migration, with PostgreSQL's own message, rather than deep inside a later feature.
CREATE EXTENSION IF NOT EXISTS vector;

-- A tenant is one customer organisation. Every tenant-owned row elsewhere references it.
CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    -- The slug names the tenant in the CLI and in URLs: lowercase letters, digits and dashes.
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A user belongs to exactly one tenant and holds one or more roles inside it.
CREATE TABLE users (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    -- Stored lowercased by the application; people sign in with the email alone, so it is
    -- unique across tenants.
    email          text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    roles          text[] NOT NULL
                   CHECK (cardinality(roles) >= 1
                          AND roles <@ ARRAY['manager', 'approver', 'admin']::text[]),
    -- An argon2id PHC string; the plain password is never stored.
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz
);
CREATE UNIQUE INDEX users_email_key ON users (email);
-- Lets other tables reference (tenant_id, user_id) together, so a row can never point at a
-- user of another tenant.
ALTER TABLE users ADD CONSTRAINT users_tenant_id_id_key UNIQUE (tenant_id, id);
-- Tenant-scoped listings (the Users page) filter by tenant first.
CREATE INDEX users_tenant_idx ON users (tenant_id, created_at);

-- Personal API tokens for scripts and integrations. Only a SHA-256 of the token is kept, so a
-- database leak does not reveal usable tokens; tokens are 256 random bits, which makes a fast
-- hash safe here (unlike passwords).
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    user_id       uuid NOT NULL,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX api_tokens_user_idx ON api_tokens (tenant_id, user_id);

-- Every login attempt, kept to throttle guessing per account and per client address. Rows are
-- not tenant-owned: an attempt happens before anyone is known.
CREATE TABLE login_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL,
    ip            text NOT NULL,
    succeeded     boolean NOT NULL,
    attempted_at  timestamptz NOT NULL DEFAULT now()
);
-- The throttle counts recent failures by account and by address.
CREATE INDEX login_attempts_email_idx ON login_attempts (email, attempted_at);
CREATE INDEX login_attempts_ip_idx ON login_attempts (ip, attempted_at);

-- Browser sessions for tower-sessions. The id is the session cookie value; data is the session
-- map as JSON, readable when an operator has to look at a session.
CREATE TABLE sessions (
    id           text PRIMARY KEY,
    data         jsonb NOT NULL,
    expiry_date  timestamptz NOT NULL
);
-- The periodic clean-up deletes expired rows by this column.
CREATE INDEX sessions_expiry_idx ON sessions (expiry_date);

-- A conversation in which a facility manager sets up one site. The states and their moves are
-- defined in the backend's conversation module; the check keeps stray values out.
CREATE TABLE conversation_sessions (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    user_id            uuid NOT NULL,
    site_code          text NOT NULL CHECK (site_code ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$'),
    conversation_type  text NOT NULL CHECK (conversation_type IN ('new_site', 'update_site')),
    state              text NOT NULL CHECK (state IN ('started', 'in_progress',
                           'generating_recommendations', 'awaiting_user_approval',
                           'completed', 'cancelled', 'error')),
    -- Facts extracted from the conversation, as typed by the backend.
    collected_data     jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Optimistic concurrency: every update bumps it and checks the previous value.
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
-- One active conversation per user and site: a second start collides here and answers 409.
CREATE UNIQUE INDEX conversation_sessions_one_active
    ON conversation_sessions (tenant_id, user_id, site_code)
    WHERE state IN ('started', 'in_progress', 'generating_recommendations',
                    'awaiting_user_approval');
CREATE INDEX conversation_sessions_tenant_idx ON conversation_sessions (tenant_id, created_at);
