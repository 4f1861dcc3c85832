-- The transactional outbox: a domain event is written here in the same transaction as the
-- state change it announces, and a relay publishes it to the bus afterwards. Ids are UUIDv7,
-- so ordering by id is ordering by time of writing.
CREATE TABLE IF NOT EXISTS outbox_messages (
    id TEXT PRIMARY KEY,
    routing_key TEXT NOT NULL,
    envelope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    published_at BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_messages_unpublished ON outbox_messages (published_at, id);

-- The inbox: one row per (consumer, message) applied, so a redelivered message is applied once.
CREATE TABLE IF NOT EXISTS inbox_messages (
    consumer TEXT NOT NULL,
    message_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, message_id)
);
