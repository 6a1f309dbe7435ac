-- Data rights: erasure and the statistics that survive it. SQLite has the same in
-- sqlite/0004_data_rights.sql.

-- When the contact was erased; NULL while it is not.
ALTER TABLE contacts ADD COLUMN erased_at BIGINT;

-- The addresses of erased contacts, as the SHA-256 of the normalised address (lower-case
-- email, phone digits with their `+`), so an erased address is not messaged again by
-- accident without keeping the address itself.
CREATE TABLE erased_addresses (
    channel        TEXT    NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    address_sha256 TEXT    NOT NULL,
    erased_at      BIGINT  NOT NULL,
    PRIMARY KEY (channel, address_sha256)
);

-- `cairn stats` counts opens and clicks by event name.
CREATE INDEX events_name ON events (name);
