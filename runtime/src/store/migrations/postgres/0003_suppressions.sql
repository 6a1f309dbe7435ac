-- Respect for the contact: the suppression list. SQLite has the same in
-- sqlite/0003_suppressions.sql.

-- Addresses the dispatcher must not message, checked when each message is handed to
-- its channel: `unsubscribed` blocks marketing messages (lifted when the contact
-- grants a consent of that channel again), `hard_bounce` and `complaint` block every
-- message to the address. The address is normalised (a lower-case email).
CREATE TABLE suppressions (
    channel    TEXT    NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    address    TEXT    NOT NULL,
    reason     TEXT    NOT NULL CHECK (reason IN ('unsubscribed', 'hard_bounce', 'complaint')),
    contact_id TEXT,
    -- How it came: `one_click`, `preferences`, `webhook`, `admin`, `track`...
    source     TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (channel, address, reason)
);
CREATE INDEX suppressions_contact ON suppressions (contact_id);
