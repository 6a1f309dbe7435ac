-- A contact's events, found through an index that is filled in batches.
--
-- `events_contact` (contact_id, occurred_at, id) put each new event at the end of its
-- contact's range, so every commit dirtied (and wrote to the WAL, then checkpointed) a
-- leaf per contact it touched: with fewer, busier contacts, about twice the pages for the
-- same events, and a third of a long ingest's time. Now events go in without it, and the
-- writer folds the newest ones into `event_index` in key order every few thousand
-- events (and at start), so each leaf is written once per fold. `contact_events` reads
-- both: the folded events through the index and the few newer ones by scanning the
-- table's tail. PostgreSQL keeps its index and has the same view over `events`.

CREATE TABLE event_index (
    contact_id  TEXT    NOT NULL,
    occurred_at INTEGER NOT NULL,
    id          INTEGER NOT NULL,
    PRIMARY KEY (contact_id, occurred_at, id)
) WITHOUT ROWID;

-- Events with an id up to `upto` are in `event_index` (if they have a contact).
CREATE TABLE event_index_upto (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    upto INTEGER NOT NULL
);

INSERT INTO event_index (contact_id, occurred_at, id)
    SELECT contact_id, occurred_at, id FROM events
    WHERE contact_id IS NOT NULL
    ORDER BY contact_id, occurred_at, id;
INSERT INTO event_index_upto (one, upto) VALUES (1, COALESCE((SELECT MAX(id) FROM events), 0));
DROP INDEX events_contact;

-- A contact's events: an entry whose event was deleted or moved to another contact
-- (an alias merge) finds nothing; event ids are never reused (AUTOINCREMENT).
-- The first arm names the index's columns, so a filter on them (a contact, a time) is
-- checked on the index before an event is looked up.
CREATE VIEW contact_events AS
    SELECT i.id, i.contact_id, e.anonymous_id, e.name, e.payload, i.occurred_at,
           e.received_at, e.message_id
    FROM event_index i JOIN events e ON e.id = i.id AND e.contact_id = i.contact_id
    UNION ALL
    SELECT e.id, e.contact_id, e.anonymous_id, e.name, e.payload, e.occurred_at,
           e.received_at, e.message_id
    FROM events e
    WHERE e.id > (SELECT upto FROM event_index_upto) AND e.contact_id IS NOT NULL;
