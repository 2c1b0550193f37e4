-- Facility configuration: one typed table per kind, keyed by natural keys unique per tenant and
-- site. Range checks here repeat the Rust types' checks, so a bug in one layer cannot store an
-- out-of-range value.

-- One row per tenant whose configuration has ever changed. Applying a change set locks this row
-- (SELECT ... FOR UPDATE), so two applies of one tenant run one after the other.
CREATE TABLE config_versions (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants (id),
    version     bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sites (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    code             text NOT NULL CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$'),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind             text NOT NULL CHECK (kind IN ('office', 'warehouse', 'retail',
                         'manufacturing', 'bank_branch', 'atm', 'industrial', 'mixed_use',
                         'hospital', 'other')),
    timezone         text NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
    address          text CHECK (length(address) <= 500),
    max_users        integer NOT NULL CHECK (max_users BETWEEN 1 AND 10000),
    -- Open around the clock; when true, weekly_hours is empty.
    open_24x7        boolean NOT NULL DEFAULT false,
    -- {"mon": {"open": "09:00", "close": "17:00"}, ...}; a missing weekday is closed.
    weekly_hours     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(weekly_hours) = 'object'),
    security_level   text NOT NULL CHECK (security_level IN ('basic', 'enhanced', 'high')),
    PRIMARY KEY (tenant_id, code)
);

CREATE TABLE security_settings (
    tenant_id                 uuid NOT NULL,
    site_code                 text NOT NULL,
    gps_enabled               boolean NOT NULL,
    sleeping_guard_detection  boolean NOT NULL,
    permissible_distance_m    integer NOT NULL CHECK (permissible_distance_m BETWEEN 10 AND 1000),
    PRIMARY KEY (tenant_id, site_code),
    FOREIGN KEY (tenant_id, site_code) REFERENCES sites (tenant_id, code)
);

CREATE TABLE zones (
    tenant_id   uuid NOT NULL,
    site_code   text NOT NULL,
    code        text NOT NULL CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind        text NOT NULL CHECK (kind IN ('gate', 'perimeter', 'lobby', 'vault', 'server_room',
                    'cash_room', 'atm_area', 'parking', 'loading_dock', 'warehouse_floor',
                    'office_floor', 'plant_room', 'roof', 'other')),
    importance  smallint NOT NULL CHECK (importance BETWEEN 1 AND 5),
    risk_level  text NOT NULL CHECK (risk_level IN ('low', 'medium', 'high')),
    PRIMARY KEY (tenant_id, site_code, code),
    FOREIGN KEY (tenant_id, site_code) REFERENCES sites (tenant_id, code)
);

CREATE TABLE assets (
    tenant_id    uuid NOT NULL,
    site_code    text NOT NULL,
    code         text NOT NULL CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind         text NOT NULL CHECK (kind IN ('camera', 'nvr', 'access_reader',
                     'fire_extinguisher', 'fire_alarm_panel', 'sprinkler_valve', 'generator',
                     'ups', 'hvac_unit', 'elevator', 'pump', 'other')),
    zone_code    text,
    criticality  text NOT NULL CHECK (criticality IN ('low', 'medium', 'high', 'critical')),
    PRIMARY KEY (tenant_id, site_code, code),
    FOREIGN KEY (tenant_id, site_code) REFERENCES sites (tenant_id, code),
    FOREIGN KEY (tenant_id, site_code, zone_code) REFERENCES zones (tenant_id, site_code, code)
);

CREATE TABLE checkpoints (
    tenant_id          uuid NOT NULL,
    site_code          text NOT NULL,
    code               text NOT NULL CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$'),
    zone_code          text NOT NULL,
    verification       text NOT NULL CHECK (verification IN ('qr', 'nfc', 'gps')),
    frequency_minutes  integer NOT NULL CHECK (frequency_minutes BETWEEN 5 AND 1440),
    questions          text[] NOT NULL DEFAULT '{}' CHECK (cardinality(questions) <= 20),
    severity           text NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    PRIMARY KEY (tenant_id, site_code, code),
    FOREIGN KEY (tenant_id, site_code, zone_code) REFERENCES zones (tenant_id, site_code, code)
);

CREATE TABLE shifts (
    tenant_id     uuid NOT NULL,
    site_code     text NOT NULL,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- Local times of the site; an end before the start crosses midnight.
    start_time    text NOT NULL CHECK (start_time ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
    end_time      text NOT NULL CHECK (end_time ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
    weekdays      text[] NOT NULL CHECK (cardinality(weekdays) BETWEEN 1 AND 7
                      AND weekdays <@ ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']),
    people_count  integer NOT NULL CHECK (people_count BETWEEN 1 AND 500),
    role          text NOT NULL CHECK (role IN ('guard', 'supervisor', 'technician', 'cleaner')),
    PRIMARY KEY (tenant_id, site_code, name),
    FOREIGN KEY (tenant_id, site_code) REFERENCES sites (tenant_id, code)
);

CREATE TABLE maintenance_schedules (
    tenant_id       uuid NOT NULL,
    site_code       text NOT NULL,
    code            text NOT NULL CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$'),
    -- A schedule covers every asset of a kind, or one asset.
    asset_kind      text,
    asset_code      text,
    task            text NOT NULL CHECK (length(task) BETWEEN 1 AND 500),
    interval_count  integer NOT NULL CHECK (interval_count BETWEEN 1 AND 366),
    interval_unit   text NOT NULL CHECK (interval_unit IN ('day', 'week', 'month', 'year')),
    checklist       text[] NOT NULL DEFAULT '{}' CHECK (cardinality(checklist) <= 50),
    -- The knowledge chunk the schedule follows, as a citation.
    reference       text,
    PRIMARY KEY (tenant_id, site_code, code),
    FOREIGN KEY (tenant_id, site_code) REFERENCES sites (tenant_id, code),
    FOREIGN KEY (tenant_id, site_code, asset_code) REFERENCES assets (tenant_id, site_code, code),
    CHECK (asset_kind IS NOT NULL OR asset_code IS NOT NULL)
);

CREATE TABLE lookup_types (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    category   text NOT NULL CHECK (category ~ '^[a-z][a-z0-9_]{0,63}$'),
    code       text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    PRIMARY KEY (tenant_id, category, code)
);

-- A change set: an ordered list of typed operations on the configuration, with its preview,
-- rule-computed risk and approval tier. `revision` grows on every edit, and approvals count
-- only for the revision they were given on.
CREATE TABLE change_sets (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    requested_by      uuid NOT NULL,
    title             text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    status            text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected',
                          'expired', 'applying', 'applied', 'rolled_back')),
    revision          integer NOT NULL DEFAULT 1,
    operations        jsonb NOT NULL,
    preview           jsonb NOT NULL,
    risk_score        numeric(4, 3) NOT NULL CHECK (risk_score BETWEEN 0 AND 1),
    tier              text NOT NULL CHECK (tier IN ('self', 'one_approver', 'two_approvers')),
    -- The maker's lowest confidence, when the set came from a recommendation.
    min_confidence    numeric(4, 3) CHECK (min_confidence BETWEEN 0 AND 1),
    conversation_id   uuid REFERENCES conversation_sessions (id),
    -- Set on a rollback change set: the change set it undoes.
    rollback_of       uuid REFERENCES change_sets (id),
    apply_job_id      uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    applied_at        timestamptz,
    FOREIGN KEY (tenant_id, requested_by) REFERENCES users (tenant_id, id)
);
CREATE INDEX change_sets_tenant_status_idx ON change_sets (tenant_id, status, created_at DESC);
-- A change set is rolled back at most once.
CREATE UNIQUE INDEX change_sets_rollback_once ON change_sets (rollback_of)
    WHERE rollback_of IS NOT NULL AND status NOT IN ('rejected', 'expired');

-- One decision per person and revision: a second click, concurrent or not, changes nothing.
CREATE TABLE change_decisions (
    change_set_id   uuid NOT NULL REFERENCES change_sets (id),
    revision        integer NOT NULL,
    tenant_id       uuid NOT NULL,
    decided_by      uuid NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('approve', 'reject')),
    comment         text CHECK (length(comment) <= 2000),
    ip              text,
    user_agent      text,
    risk_score      numeric(4, 3) NOT NULL,
    correlation_id  text,
    decided_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (change_set_id, revision, decided_by),
    FOREIGN KEY (tenant_id, decided_by) REFERENCES users (tenant_id, id)
);

-- What an apply did, one row per operation, in order: enough to undo it.
CREATE TABLE change_records (
    change_set_id  uuid NOT NULL REFERENCES change_sets (id),
    seq            integer NOT NULL,
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    kind           text NOT NULL,
    key            jsonb NOT NULL,
    action         text NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    before         jsonb,
    after          jsonb,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (change_set_id, seq)
);
