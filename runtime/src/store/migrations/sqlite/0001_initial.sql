-- The first schema. Times are integer milliseconds since the Unix epoch (UTC); JSON is
-- TEXT. PostgreSQL has the same tables in postgres/0001_initial.sql.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE plan_versions (
    version      INTEGER PRIMARY KEY,
    content_hash TEXT    NOT NULL,
    git_commit   TEXT,
    plan         TEXT    NOT NULL,
    deployed_at  INTEGER NOT NULL,
    active       INTEGER NOT NULL DEFAULT FALSE CHECK (active IN (0, 1))
);
-- At most one active version.
CREATE UNIQUE INDEX plan_versions_one_active ON plan_versions (active) WHERE active;

CREATE TABLE contacts (
    contact_id TEXT    PRIMARY KEY,
    traits     TEXT    NOT NULL DEFAULT '{}',
    time_zone  TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    erased     INTEGER NOT NULL DEFAULT FALSE CHECK (erased IN (0, 1))
);

CREATE TABLE aliases (
    anonymous_id TEXT    PRIMARY KEY,
    contact_id   TEXT    NOT NULL,
    merged_at    INTEGER NOT NULL
);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL while the event belongs to an anonymous id no contact has merged yet.
    contact_id   TEXT,
    anonymous_id TEXT,
    name         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    occurred_at  INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    message_id   TEXT    UNIQUE,
    CHECK (contact_id IS NOT NULL OR anonymous_id IS NOT NULL)
);
CREATE INDEX events_contact ON events (contact_id, occurred_at, id);
CREATE INDEX events_anonymous ON events (anonymous_id) WHERE contact_id IS NULL;

CREATE TABLE consents (
    contact_id TEXT    NOT NULL,
    consent    TEXT    NOT NULL,
    granted    INTEGER NOT NULL CHECK (granted IN (0, 1)),
    source     TEXT,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (contact_id, consent)
);

CREATE TABLE tags (
    contact_id TEXT    NOT NULL,
    tag        TEXT    NOT NULL,
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (contact_id, tag)
);

CREATE TABLE scores (
    contact_id TEXT    NOT NULL,
    score      TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (contact_id, score)
);

CREATE TABLE segment_members (
    contact_id TEXT    NOT NULL,
    segment    TEXT    NOT NULL,
    entered_at INTEGER NOT NULL,
    PRIMARY KEY (contact_id, segment)
);

CREATE TABLE runs (
    run_id       TEXT    PRIMARY KEY,
    contact_id   TEXT    NOT NULL,
    journey      TEXT    NOT NULL,
    plan_version INTEGER NOT NULL,
    step         TEXT,
    state        TEXT    NOT NULL
        CHECK (state IN ('ready', 'waiting', 'waiting_for_event', 'paused', 'ended')),
    wait_event   TEXT,
    until_at     INTEGER,
    bindings     TEXT    NOT NULL DEFAULT '{}',
    visits       TEXT    NOT NULL DEFAULT '{}',
    entered_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    end_reason   TEXT,
    updated_at   INTEGER NOT NULL,
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
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    key              TEXT    NOT NULL UNIQUE,
    kind             TEXT    NOT NULL CHECK (kind IN ('run', 'wakeup')),
    contact_id       TEXT    NOT NULL,
    run_id           TEXT,
    detail           TEXT,
    due_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    attempt          INTEGER NOT NULL DEFAULT 0,
    CHECK ((kind = 'run') = (run_id IS NOT NULL)),
    CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
);
CREATE INDEX timers_due ON timers (due_at);

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           TEXT    NOT NULL,
    step             TEXT    NOT NULL,
    visit            INTEGER NOT NULL,
    contact_id       TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    template         TEXT,
    -- Whether frequency caps count it (a marketing template, not a webhook).
    marketing        INTEGER NOT NULL DEFAULT FALSE CHECK (marketing IN (0, 1)),
    address          TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    -- The idempotency key: a replayed transition never queues a message twice.
    UNIQUE (run_id, step, visit),
    CHECK ((state = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_contact ON outbox (contact_id, created_at);

CREATE TABLE outcomes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    contact_id TEXT    NOT NULL,
    journey    TEXT,
    run_id     TEXT,
    step       TEXT,
    kind       TEXT    NOT NULL,
    detail     TEXT    NOT NULL
);
CREATE INDEX outcomes_contact ON outcomes (contact_id, at, id);
CREATE INDEX outcomes_journey ON outcomes (journey, kind);
