-- Conversation turns and recommendation runs: the messages of a conversation, the runs of the
-- maker-checker chain with their proposal items, and in-app notifications for escalations.

-- Every message of a conversation. User messages are stored as screening returned them
-- (control and invisible characters removed, cut to the length limit); assistant messages are
-- written by the turn job.
CREATE TABLE conversation_messages (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    conversation_id  uuid NOT NULL REFERENCES conversation_sessions (id),
    role             text NOT NULL CHECK (role IN ('user', 'assistant')),
    text             text NOT NULL CHECK (length(text) BETWEEN 1 AND 8000),
    -- Screening flags of a user message, such as injection_suspected or truncated.
    flags            text[] NOT NULL DEFAULT '{}',
    -- Injection score in [0, 1] and the matched categories, shown to reviewers.
    screening_score  real NOT NULL DEFAULT 0 CHECK (screening_score BETWEEN 0 AND 1),
    screening_reasons jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- The user message an assistant message answers. Unique, so a redelivered turn job cannot
    -- answer the same message twice.
    reply_to         uuid REFERENCES conversation_messages (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'assistant') OR reply_to IS NULL)
);
CREATE UNIQUE INDEX conversation_messages_one_reply ON conversation_messages (reply_to)
    WHERE reply_to IS NOT NULL;
-- The chat and its event stream read a conversation's messages in order.
CREATE INDEX conversation_messages_conversation_idx
    ON conversation_messages (conversation_id, created_at, id);

-- One run of retrieve -> maker -> checker -> consensus -> persist. Each stage's output is kept
-- on the row, so a stage job that is delivered again reads its input instead of recomputing
-- the earlier stages, and a reader sees how far the run got.
CREATE TABLE recommendation_runs (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    conversation_id      uuid NOT NULL REFERENCES conversation_sessions (id),
    requested_by         uuid NOT NULL,
    -- The stage that runs next, or done.
    stage                text NOT NULL CHECK (stage IN ('retrieve', 'maker', 'checker',
                             'consensus', 'persist', 'done')),
    status               text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    progress             smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    -- Stage outputs: retrieved chunks, maker output, checker output, consensus.
    chunks               jsonb,
    maker_output         jsonb,
    checker_output       jsonb,
    consensus            jsonb,
    decision             text CHECK (decision IN ('approve', 'modify', 'escalate')),
    confidence           double precision CHECK (confidence BETWEEN 0 AND 1),
    -- Coverage, agreement, freshness and policy, each in [0, 1].
    terms                jsonb,
    removed_unsupported  integer CHECK (removed_unsupported >= 0),
    removed_unknown      integer CHECK (removed_unknown >= 0),
    error                text,
    -- The job of the current stage, to find its ledger row and dead letter.
    job_id               uuid,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    finished_at          timestamptz,
    FOREIGN KEY (tenant_id, requested_by) REFERENCES users (tenant_id, id),
    CHECK ((status = 'running') = (finished_at IS NULL))
);
-- One running run per conversation: the conversation state allows one, and this keeps it so
-- under concurrent requests.
CREATE UNIQUE INDEX recommendation_runs_one_running ON recommendation_runs (conversation_id)
    WHERE status = 'running';
CREATE INDEX recommendation_runs_conversation_idx
    ON recommendation_runs (conversation_id, created_at);

-- The operations a run proposes after consensus, in apply order.
CREATE TABLE recommendation_items (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    run_id      uuid NOT NULL REFERENCES recommendation_runs (id),
    ordinal     integer NOT NULL CHECK (ordinal >= 0),
    operation   jsonb NOT NULL,
    rationale   text NOT NULL,
    confidence  double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    -- [{chunk_id, document_id, document_title, section_path, quote}], only citations that
    -- survived the consensus.
    citations   jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- The checker's findings: [{category, passed, message}].
    findings    jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- Unique, so a redelivered persist job inserts each item once.
    UNIQUE (run_id, ordinal)
);

-- In-app notifications, such as an escalated conversation for each approver of its tenant.
CREATE TABLE notifications (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    user_id       uuid NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('conversation.escalated')),
    subject_type  text NOT NULL,
    subject_id    text NOT NULL,
    message       text NOT NULL CHECK (length(message) BETWEEN 1 AND 2000),
    created_at    timestamptz NOT NULL DEFAULT now(),
    read_at       timestamptz,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id),
    -- One notification per user and event, however often the event is recorded.
    UNIQUE (user_id, kind, subject_id)
);
-- The inbox lists a user's unread notifications, newest first.
CREATE INDEX notifications_user_idx ON notifications (tenant_id, user_id, created_at DESC);
