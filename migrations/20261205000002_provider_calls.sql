-- Model provider calls, circuit breakers and rate-limit windows. Every process of a deployment
-- reads and writes these rows, so breakers, rate limits and budgets hold across processes.

-- One row per request sent to a model provider, and one per request routed to the offline rules.
-- The monthly token budget is the sum of a tenant's rows of the current calendar month (UTC).
-- TODO: nothing prunes old rows yet; the budget needs the current month and the providers page
-- the last hour, so rows older than a few months could go in the upkeep job.
CREATE TABLE provider_calls (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    provider         text NOT NULL CHECK (provider IN ('openai_compatible', 'anthropic', 'offline')),
    operation        text NOT NULL CHECK (operation IN ('chat', 'embed')),
    -- The model the provider reported, or the configured one when the call failed.
    model            text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
    -- The prompt template for chat, the caller's purpose (such as knowledge_chunks) for embed.
    template         text NOT NULL CHECK (length(template) BETWEEN 1 AND 100),
    -- Hex SHA-256 of the request, so identical prompts can be found without storing their text.
    prompt_hash      text NOT NULL CHECK (prompt_hash ~ '^[0-9a-f]{64}$'),
    -- 1 for the first request, 2 for the repair request after invalid output.
    attempt          smallint NOT NULL CHECK (attempt BETWEEN 1 AND 2),
    input_tokens     integer NOT NULL CHECK (input_tokens >= 0),
    output_tokens    integer NOT NULL CHECK (output_tokens >= 0),
    -- US dollars from the configured price table; NULL when the model has no price there.
    cost_usd         numeric(14, 8) CHECK (cost_usd >= 0),
    latency_ms       integer NOT NULL CHECK (latency_ms >= 0),
    -- ok, or the job error class of the failure.
    outcome          text NOT NULL CHECK (outcome IN ('ok', 'database', 'network', 'model_provider',
                                                      'rate_limited', 'circuit_open', 'permanent')),
    -- The error sentence with keys and secrets removed; NULL when the outcome is ok.
    error            text CHECK (length(error) <= 1000),
    -- Why earlier providers of the chain were skipped or failed; NULL when none was.
    fallback_reason  text CHECK (length(fallback_reason) <= 2000),
    correlation_id   text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_calls_tenant_time_idx ON provider_calls (tenant_id, created_at);
CREATE INDEX provider_calls_tenant_provider_time_idx
    ON provider_calls (tenant_id, provider, created_at);

-- The circuit breaker of one provider for one tenant. Every change runs under a row lock
-- (SELECT ... FOR UPDATE), so two processes never both take the single half-open probe.
CREATE TABLE provider_breakers (
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    provider          text NOT NULL CHECK (provider IN ('openai_compatible', 'anthropic')),
    state             text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    -- Times of the failures inside the failure window, oldest first.
    failures          timestamptz[] NOT NULL DEFAULT '{}',
    opened_at         timestamptz,
    -- When an open breaker lets one probe through.
    reopens_at        timestamptz,
    -- When the running half-open probe started; NULL when no probe runs.
    probe_started_at  timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, provider),
    CHECK (state <> 'open' OR (opened_at IS NOT NULL AND reopens_at IS NOT NULL))
);

-- Requests and tokens sent to one provider in one minute, for its requests-per-minute and
-- tokens-per-minute limits. The limits belong to the provider account, so they count every
-- tenant together. Windows older than an hour are deleted when a new window starts.
CREATE TABLE provider_rate_windows (
    provider      text NOT NULL,
    window_start  timestamptz NOT NULL,
    requests      integer NOT NULL DEFAULT 0 CHECK (requests >= 0),
    tokens        bigint NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    PRIMARY KEY (provider, window_start)
);

-- A provider that answered 429: no request goes to it before `until` (its Retry-After).
CREATE TABLE provider_cooldowns (
    provider  text PRIMARY KEY,
    until     timestamptz NOT NULL,
    reason    text NOT NULL CHECK (length(reason) <= 1000)
);
