-- The first schema. Times are BIGINT milliseconds since the Unix epoch (UTC); JSON is
-- JSONB (the plan is kept as the exact text deployed). SQLite has the same tables in
-- sqlite/0001_initial.sql.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE plan_versions (
    version      BIGINT  PRIMARY KEY,
    content_hash TEXT    NOT NULL,
    git_commit   TEXT,
    plan         TEXT    NOT NULL,
    deployed_at  BIGINT  NOT NULL,
    active       BOOLEAN NOT NULL DEFAULT FALSE
);
-- At most one active version.
CREATE UNIQUE INDEX plan_versions_one_active ON plan_versions (active) WHERE active;

CREATE TABLE contacts (
    contact_id TEXT    PRIMARY KEY,
    traits     JSONB   NOT NULL DEFAULT '{}',
    time_zone  TEXT,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    erased     BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE aliases (
    anonymous_id TEXT    PRIMARY KEY,
    contact_id   TEXT    NOT NULL,
    merged_at    BIGINT  NOT NULL
);

CREATE TABLE events (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL while the event belongs to an anonymous id no contact has merged yet.
    contact_id   TEXT,
    anonymous_id TEXT,
    name         TEXT    NOT NULL,
    payload      JSONB   NOT NULL,
    occurred_at  BIGINT  NOT NULL,
    received_at  BIGINT  NOT NULL,
    message_id   TEXT    UNIQUE,
    CHECK (contact_id IS NOT NULL OR anonymous_id IS NOT NULL)
);
CREATE INDEX events_contact ON events (contact_id, occurred_at, id);
CREATE INDEX events_anonymous ON events (anonymous_id) WHERE contact_id IS NULL;

CREATE TABLE consents (
    contact_id TEXT    NOT NULL,
    consent    TEXT    NOT NULL,
    granted    BOOLEAN NOT NULL,
    source     TEXT,
    changed_at BIGINT  NOT NULL,
    PRIMARY KEY (contact_id, consent)
);

CREATE TABLE tags (
    contact_id TEXT    NOT NULL,
    tag        TEXT    NOT NULL,
    added_at   BIGINT  NOT NULL,
    PRIMARY KEY (contact_id, tag)
);

CREATE TABLE scores (
    contact_id TEXT    NOT NULL,
    score      TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (contact_id, score)
);

CREATE TABLE segment_members (
    contact_id TEXT    NOT NULL,
    segment    TEXT    NOT NULL,
    entered_at BIGINT  NOT NULL,
    PRIMARY KEY (contact_id, segment)
);

CREATE TABLE runs (
    run_id       TEXT    PRIMARY KEY,
    contact_id   TEXT    NOT NULL,
    journey      TEXT    NOT NULL,
    plan_version BIGINT  NOT NULL,
    step         TEXT,
    state        TEXT    NOT NULL
        CHECK (state IN ('ready', 'waiting', 'waiting_for_event', 'paused', 'ended')),
    wait_event   TEXT,
    until_at     BIGINT,
    bindings     JSONB   NOT NULL DEFAULT '{}',
    visits       JSONB   NOT NULL DEFAULT '{}',
    entered_at   BIGINT  NOT NULL,
    ended_at     BIGINT,
    end_reason   TEXT,
    updated_at   BIGINT  NOT NULL,
    -- The state and its timestamps go together (River's habit).
    CHECK ((state = 'ended') = (ended_at IS NOT NULL AND end_reason IS NOT NULL)),
    CHECK (state NOT IN ('waiting', 'waiting_for_event') OR until_at IS NOT NULL),
    CHECK ((state = 'waiting_for_event') = (wait_event IS NOT NULL))
);
CREATE INDEX runs_contact ON runs (contact_id);
CREATE INDEX runs_in_flight ON runs (journey, step) WHERE state <> 'ended';

-- Durable timers: a run's next move, or contact-level work (abandonment checks,
-- anniversaries, segment boundaries). `key` names the work so it is scheduled once.
CREATE TABLE timers (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key              TEXT    NOT NULL UNIQUE,
    kind             TEXT    NOT NULL CHECK (kind IN ('run', 'wakeup')),
    contact_id       TEXT    NOT NULL,
    run_id           TEXT,
    detail           JSONB,
    due_at           BIGINT  NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    attempt          BIGINT  NOT NULL DEFAULT 0,
    CHECK ((kind = 'run') = (run_id IS NOT NULL)),
    CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
);
CREATE INDEX timers_due ON timers (due_at);

CREATE TABLE outbox (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           TEXT    NOT NULL,
    step             TEXT    NOT NULL,
    visit            BIGINT  NOT NULL,
    contact_id       TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    template         TEXT,
    -- Whether frequency caps count it (a marketing template, not a webhook).
    marketing        BOOLEAN NOT NULL DEFAULT FALSE,
    address          TEXT    NOT NULL,
    payload          JSONB   NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    last_error       TEXT,
    created_at       BIGINT  NOT NULL,
    sent_at          BIGINT,
    -- The idempotency key: a replayed transition never queues a message twice.
    UNIQUE (run_id, step, visit),
    CHECK ((state = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_contact ON outbox (contact_id, created_at);

CREATE TABLE outcomes (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT  NOT NULL,
    contact_id TEXT    NOT NULL,
    journey    TEXT,
    run_id     TEXT,
    step       TEXT,
    kind       TEXT    NOT NULL,
    detail     JSONB   NOT NULL
);
CREATE INDEX outcomes_contact ON outcomes (contact_id, at, id);
CREATE INDEX outcomes_journey ON outcomes (journey, kind);
