-- Jobs, dead letters and the audit trail.
--
-- apalis (schema `apalis`) is the transport: it stores queued deliveries and hands them to
-- workers. The job's life across attempts (retries, history, final outcome) is kept here in
-- `job_ledger`, because apalis-postgres 1.0 has no backoff, no dead letters and no re-enqueue.

-- One row per job, kept across its attempts and across retries from the dead-letter page.
CREATE TABLE job_ledger (
    id               uuid PRIMARY KEY,
    -- NULL for system jobs (upkeep, alerts about system jobs).
    tenant_id        uuid REFERENCES tenants (id),
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    -- Two enqueues with the same kind and key are one job, so a request retried by a client
    -- or a scheduler running in several processes queues the work once.
    idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    correlation_id   text NOT NULL,
    -- The handler's arguments. Secrets never go here: handlers read them from configuration.
    args             jsonb NOT NULL,
    critical         boolean NOT NULL,
    status           text NOT NULL
                     CHECK (status IN ('queued', 'running', 'succeeded', 'dead', 'discarded')),
    -- The attempt number over the job's whole life, 1-based; each delivery carries it, and a
    -- delivery whose number is not the current one is a duplicate and is skipped.
    attempt          integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    -- 1, plus one for every retry from the dead-letter page; retry budgets count per run.
    run              integer NOT NULL DEFAULT 1 CHECK (run >= 1),
    run_after        timestamptz NOT NULL DEFAULT now(),
    -- The apalis task carrying the current attempt, for the sweep that finds lost deliveries.
    queue_task_id    text NOT NULL,
    -- How many times the current attempt was handed to a worker: above 1 after a crash.
    deliveries       integer NOT NULL DEFAULT 0,
    -- One object per finished attempt: run, attempt, started_at, finished_at, outcome, class,
    -- error, delay_ms.
    history          jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- Progress of long jobs, 0-100, with an optional note shown beside it.
    progress         smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    progress_note    text,
    enqueued_at      timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (kind, idempotency_key)
);
CREATE INDEX job_ledger_open_idx ON job_ledger (updated_at)
    WHERE status IN ('queued', 'running');
CREATE INDEX job_ledger_finished_idx ON job_ledger (finished_at) WHERE status = 'succeeded';
CREATE INDEX job_ledger_tenant_idx ON job_ledger (tenant_id, enqueued_at DESC);

-- A job that ran out of retries or failed permanently. One row per job and run: the unique
-- key turns a second write (a duplicate delivery failing again) into a no-op.
CREATE TABLE dead_letters (
    id              uuid PRIMARY KEY,
    job_id          uuid NOT NULL REFERENCES job_ledger (id) ON DELETE CASCADE,
    run             integer NOT NULL,
    tenant_id       uuid REFERENCES tenants (id),
    kind            text NOT NULL,
    error_class     text NOT NULL CHECK (error_class IN ('database', 'network', 'model_provider',
                                                          'rate_limited', 'circuit_open',
                                                          'permanent')),
    -- The last error's sentence, then its causes, sanitized like the payload.
    error_chain     jsonb NOT NULL,
    -- The job's attempt history at the time it failed.
    attempts        jsonb NOT NULL,
    attempt_count   integer NOT NULL,
    correlation_id  text NOT NULL,
    critical        boolean NOT NULL,
    -- The job's arguments with secrets and personal data redacted.
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'retried', 'discarded')),
    failed_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    resolved_by     uuid REFERENCES users (id),
    discard_reason  text CHECK (discard_reason IS NULL OR length(discard_reason) BETWEEN 1 AND 500),
    UNIQUE (job_id, run)
);
CREATE INDEX dead_letters_tenant_idx ON dead_letters (tenant_id, failed_at DESC);
CREATE INDEX dead_letters_failed_at_idx ON dead_letters (failed_at);

-- Rows the `demo.fail` job writes; it exists so tests can produce each error class and check
-- that an effect happens once however often a job is delivered.
CREATE TABLE demo_effects (
    idempotency_key  text PRIMARY KEY,
    job_id           uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- The audit trail: append-only, hash-chained per tenant. Each row's hash covers its content and
-- the previous row's hash, so editing or deleting a row breaks the chain from there on.
CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    -- Position in the tenant's chain, from 1; filled by the trigger below.
    seq             bigint NOT NULL,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    -- NULL for the system and for operator commands, which `actor_label` names.
    actor_id        uuid REFERENCES users (id),
    actor_label     text NOT NULL,
    action          text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    subject_type    text NOT NULL,
    subject_id      text NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
    ip              text,
    user_agent      text,
    risk_score      integer,
    correlation_id  text,
    prev_hash       text NOT NULL,
    hash            text NOT NULL,
    UNIQUE (tenant_id, seq)
);
CREATE INDEX audit_log_subject_idx ON audit_log (tenant_id, subject_type, subject_id);
CREATE INDEX audit_log_actor_idx ON audit_log (tenant_id, actor_id);

-- The hash of one audit row. jsonb's text form is canonical, so the same content always gives
-- the same bytes; the timestamp enters as whole microseconds since the epoch.
CREATE FUNCTION audit_row_hash(
    prev_hash text, tenant_id uuid, seq bigint, occurred_at timestamptz, actor_id uuid,
    actor_label text, action text, subject_type text, subject_id text, detail jsonb, ip text,
    user_agent text, risk_score integer, correlation_id text
) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT encode(sha256(convert_to(
        prev_hash || jsonb_build_array(
            tenant_id, seq, (extract(epoch FROM occurred_at) * 1000000)::bigint, actor_id,
            actor_label, action, subject_type, subject_id, detail, ip, user_agent, risk_score,
            correlation_id
        )::text,
        'UTF8')), 'hex')
$$;

-- Fills seq, prev_hash and hash on insert. The advisory lock serializes writers of one tenant
-- until their transaction ends, so two concurrent inserts never chain onto the same row.
CREATE FUNCTION audit_log_chain() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    last_seq  bigint;
    last_hash text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('audit_log:' || NEW.tenant_id::text, 0));
    SELECT seq, hash INTO last_seq, last_hash
      FROM audit_log
     WHERE tenant_id = NEW.tenant_id
     ORDER BY seq DESC
     LIMIT 1;
    NEW.seq := coalesce(last_seq, 0) + 1;
    NEW.prev_hash := coalesce(last_hash, repeat('0', 64));
    NEW.occurred_at := date_trunc('microseconds', coalesce(NEW.occurred_at, now()));
    NEW.hash := audit_row_hash(
        NEW.prev_hash, NEW.tenant_id, NEW.seq, NEW.occurred_at, NEW.actor_id, NEW.actor_label,
        NEW.action, NEW.subject_type, NEW.subject_id, NEW.detail, NEW.ip, NEW.user_agent,
        NEW.risk_score, NEW.correlation_id);
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_log_chain_trigger
    BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();

-- The trail is append-only: updates, deletes and truncation fail for every role that does not
-- disable triggers (only a superuser can, and the hash chain then reports the change).
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
