-- The queues of the in-process bus (dev mode), kept in a database of their own so that a crash
-- of `eventhive dev` loses nothing the outbox already marked published. One row per queue a
-- published message was routed to, deleted once that queue's consumer handled it.
CREATE TABLE IF NOT EXISTS bus_messages (
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    envelope TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    -- Deliveries so far plus one: the number of the next delivery.
    attempt BIGINT NOT NULL DEFAULT 1,
    -- When a delivery first failed (Unix ms); retries stop EVENTHIVE_BUS_RETRY_FOR_SECS later.
    first_failed_at BIGINT,
    -- Not delivered before this time: the backoff of a failed message.
    available_at BIGINT NOT NULL,
    last_error TEXT,
    PRIMARY KEY (queue, message_id)
);
CREATE INDEX IF NOT EXISTS bus_messages_due ON bus_messages (queue, available_at, message_id);

-- Messages that can never succeed or failed for longer than the retries allow, with the reason,
-- for `eventhive dead-letters list|replay`.
CREATE TABLE IF NOT EXISTS bus_dead_letters (
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    envelope TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    dead_at BIGINT NOT NULL,
    PRIMARY KEY (queue, message_id)
);
