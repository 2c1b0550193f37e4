-- Knowledge base: sources, document versions, content-addressed blobs, chunks with their
-- embeddings and full-text vectors, two-person reviews, and webhook deliveries.

-- Where a document comes from. A URL or webhook source is re-fetched on refresh and each fetch
-- whose content changed becomes a new document version of the same source.
CREATE TABLE knowledge_sources (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    kind             text NOT NULL CHECK (kind IN ('url', 'upload', 'webhook')),
    url              text CHECK (url IS NULL OR length(url) BETWEEN 1 AND 2048),
    title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    -- Weight in search and consensus: official 1.0, high 0.8, medium 0.6, low 0.3.
    authority        text NOT NULL CHECK (authority IN ('official', 'high', 'medium', 'low')),
    -- NULL for uploads, which have nothing to re-fetch.
    next_refresh_at  timestamptz,
    created_by       uuid REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    retired_at       timestamptz,
    CHECK ((kind = 'upload') = (url IS NULL))
);
CREATE INDEX knowledge_sources_refresh_idx ON knowledge_sources (next_refresh_at)
    WHERE next_refresh_at IS NOT NULL AND retired_at IS NULL;

-- Document bytes, stored once per tenant and content hash; file names never name storage.
CREATE TABLE knowledge_blobs (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content     bytea NOT NULL,
    byte_size   bigint NOT NULL CHECK (byte_size >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sha256)
);

-- One version of a source moving through the pipeline, then through review.
CREATE TABLE knowledge_documents (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    source_id       uuid NOT NULL REFERENCES knowledge_sources (id),
    version         integer NOT NULL CHECK (version >= 1),
    -- processing: in the pipeline; in_review: waiting for two reviewers; unchanged: a refresh
    -- found the same content as the source's latest version, so nothing new was made.
    status          text NOT NULL CHECK (status IN ('processing', 'in_review', 'published',
                        'rejected', 'superseded', 'retired', 'unchanged')),
    stage           text NOT NULL CHECK (stage IN ('fetch', 'extract', 'sanitize', 'chunk',
                        'embed', 'index', 'review', 'publish')),
    -- Share of the whole pipeline done, 0-100, for the progress bar.
    progress        smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    progress_note   text,
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    -- The uploaded file's name, for display only.
    file_name       text CHECK (file_name IS NULL OR length(file_name) BETWEEN 1 AND 255),
    content_type    text,
    format          text,
    sha256          text,
    byte_size       bigint,
    -- Extracted sections before and after sanitizing: [{"path": [...], "text": "..."}].
    sections        jsonb,
    -- Reviewer-facing findings: hidden text, injection-like instructions.
    flags           jsonb NOT NULL DEFAULT '[]'::jsonb,
    error           text,
    -- The job running the current stage, whose status and history explain a stuck document.
    job_id          uuid REFERENCES job_ledger (id),
    submitted_by    uuid REFERENCES users (id),
    correlation_id  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    UNIQUE (source_id, version),
    FOREIGN KEY (tenant_id, sha256) REFERENCES knowledge_blobs (tenant_id, sha256)
);
CREATE INDEX knowledge_documents_tenant_idx ON knowledge_documents (tenant_id, created_at DESC);
-- At most one published version per source.
CREATE UNIQUE INDEX knowledge_documents_one_published
    ON knowledge_documents (source_id) WHERE status = 'published';

-- A piece of a document's text with its place in the document, its embedding and its words.
CREATE TABLE knowledge_chunks (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    document_id     uuid NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    ordinal         integer NOT NULL CHECK (ordinal >= 0),
    section_path    text[] NOT NULL,
    -- The path joined with " / ", kept as text because array_to_string is not immutable and
    -- so cannot feed the generated column below.
    section_heading text NOT NULL DEFAULT '',
    text            text NOT NULL CHECK (length(text) > 0),
    content_sha256  text NOT NULL,
    embedding       vector(384),
    embedding_model text,
    -- Headings count as words of the chunk, so a search for a section title finds it.
    tsv             tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('english', section_heading), 'B')
                        || setweight(to_tsvector('english', text), 'A')) STORED,
    -- True exactly while the chunk's document is published; both indexes cover only these rows.
    searchable      boolean NOT NULL DEFAULT false,
    UNIQUE (document_id, ordinal),
    CHECK ((embedding IS NULL) = (embedding_model IS NULL)),
    CHECK (NOT searchable OR embedding IS NOT NULL)
);
CREATE INDEX knowledge_chunks_embedding_idx ON knowledge_chunks
    USING hnsw (embedding vector_cosine_ops) WHERE searchable;
CREATE INDEX knowledge_chunks_tsv_idx ON knowledge_chunks USING gin (tsv) WHERE searchable;
-- Reuse of vectors for identical text: the embed stage looks chunks up by content and model.
CREATE INDEX knowledge_chunks_content_idx ON knowledge_chunks (tenant_id, content_sha256)
    WHERE embedding IS NOT NULL;

-- One row per reviewer and document: a second or concurrent review by the same person is one.
CREATE TABLE knowledge_reviews (
    document_id     uuid NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    reviewer_id     uuid NOT NULL REFERENCES users (id),
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    decision        text NOT NULL CHECK (decision IN ('approve', 'reject')),
    accuracy        real CHECK (accuracy BETWEEN 0 AND 1),
    completeness    real CHECK (completeness BETWEEN 0 AND 1),
    relevance       real CHECK (relevance BETWEEN 0 AND 1),
    comment         text CHECK (comment IS NULL OR length(comment) <= 2000),
    ip              text,
    user_agent      text,
    correlation_id  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, reviewer_id)
);

-- Delivery ids of accepted webhook calls, so a replayed delivery is refused.
CREATE TABLE knowledge_webhook_deliveries (
    delivery_id  text PRIMARY KEY CHECK (length(delivery_id) BETWEEN 1 AND 200),
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    document_id  uuid REFERENCES knowledge_documents (id) ON DELETE SET NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
