-- Money owed back to a buyer: a payment that was captured for an order whose hold had already
-- ended (expired or cancelled while the charge was in flight). The row is written in the
-- transaction that learns of the capture, so neither a failed refund call nor a crash can lose
-- it; the sweeper calls payments' refund (idempotent there) until it succeeds.
CREATE TABLE owed_refunds (
    order_id TEXT PRIMARY KEY REFERENCES orders (id),
    payment_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Refund calls made so far, and the last one's error, for operators.
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    -- Set once payments confirmed the refund; the row is kept as the record of it.
    refunded_at BIGINT
);
CREATE INDEX owed_refunds_open ON owed_refunds (refunded_at, order_id);
