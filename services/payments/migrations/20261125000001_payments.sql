-- Payments' own database: what we charged for which order, every call we made to the card
-- processor, and the refunds. Portable SQL for PostgreSQL and SQLite (ADR 0002).

-- One row per charge we set out to make. A row is 'pending' from before the processor is
-- called until its answer is stored, so a crash in between leaves a visible trace that the next
-- charge of the order, or a lookup at the processor by idempotency key, settles. Only the last four digits and a brand guess of the card are kept:
-- never the number, never the CVC.
CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'captured', 'declined', 'refunded')),
    decline_code TEXT,
    card_last4 TEXT NOT NULL,
    card_brand TEXT NOT NULL,
    processor_reference TEXT,
    -- Sent to the processor with every call for this payment, so that asking again is always safe.
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- At most one charge per order, enforced here and not only in code: of all the payments of an
-- order, at most one is in flight, captured or refunded. Declined ones are outside the index, so
-- a buyer whose card was declined can pay with another card.
CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
    WHERE status IN ('pending', 'captured', 'refunded');
CREATE INDEX payments_order ON payments (order_id, created_at);

-- Every call made to the processor, retries of transient failures included: the audit trail
-- of what we asked and what it answered.
CREATE TABLE payment_attempts (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    -- 1, 2, ... per payment across charge and refund calls.
    attempt BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('charge', 'refund')),
    processor_idempotency_key TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('captured', 'declined', 'transient_error', 'refunded', 'error')),
    detail TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (payment_id, attempt)
);

-- A payment is refunded whole and once.
CREATE TABLE refunds (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL UNIQUE REFERENCES payments (id),
    order_id TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    reason TEXT NOT NULL,
    processor_reference TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- NOT PAYMENTS' STATE: the ledger of the SIMULATED card processor (processor.rs), which stands in
-- for an external processor such as Stripe. It lives in this database only because the
-- simulation has nowhere else to keep it; payments' own code never reads it. It is durable so
-- that, as at a real processor, a call repeated with an idempotency key it has seen (after a
-- crash, a timeout, a retry) answers what it answered before and never moves money twice.
CREATE TABLE simulated_processor_charges (
    idempotency_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- Charges only.
    card_last4 TEXT,
    -- 'transient_error' while a test card that fails its first call has only failed.
    outcome TEXT NOT NULL CHECK (outcome IN ('captured', 'declined', 'refunded', 'transient_error')),
    -- The charge's or refund's reference; none for declines.
    reference TEXT,
    decline_code TEXT,
    -- Refunds only: the charge they return money from.
    charge_reference TEXT,
    transient_failures_served BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
