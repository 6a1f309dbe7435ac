-- Real channels (SMTP, SMS and push providers): what the dispatcher records about each
-- hand-over. SQLite has the same in sqlite/0002_channels.sql.

-- When a dispatcher began handing the message to a provider that cannot drop a
-- repeat (SMTP, SMS, push); cleared when the result is recorded. A message claimed
-- again with this still set was interrupted mid-hand-over (the daemon died): it is
-- not sent again, so it cannot arrive twice.
ALTER TABLE outbox ADD COLUMN sending_at BIGINT;
-- What kind of failure `last_error` explains: `temporary`, `rejected`,
-- `invalid_address`, `invalid_message`, `interrupted`, `undelivered`, `config`.
ALTER TABLE outbox ADD COLUMN error_kind TEXT;
-- The provider's id of the message (an SMTP queue id, a Twilio SID), to match
-- delivery status callbacks.
ALTER TABLE outbox ADD COLUMN provider_ref TEXT;
-- The last delivery status a provider called back with (`delivered`, `undelivered`,
-- `failed`, `opened`...), and when.
ALTER TABLE outbox ADD COLUMN delivery_status TEXT;
ALTER TABLE outbox ADD COLUMN delivery_at BIGINT;

CREATE INDEX outbox_provider_ref ON outbox (channel, provider_ref)
    WHERE provider_ref IS NOT NULL;
