-- A contact's events. On SQLite, `contact_events` reads an index filled in batches
-- (sqlite/0006_event_index.sql); PostgreSQL keeps `events_contact` and the view is the
-- table, so the queries of both backends read the same view.
CREATE VIEW contact_events AS
    SELECT id, contact_id, anonymous_id, name, payload, occurred_at, received_at, message_id
    FROM events
    WHERE contact_id IS NOT NULL;
