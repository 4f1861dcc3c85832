-- Ticketing's own database: what it sells (a copy of catalog's events and ticket types, kept
-- current from catalog's domain events), the inventory, orders, tickets and idempotency keys.

-- Catalog's events as ticketing last heard of them, with the key that signs their tickets.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    currency TEXT NOT NULL,
    max_tickets_per_order BIGINT NOT NULL,
    max_tickets_per_buyer BIGINT NOT NULL,
    -- Catalog's revision of the snapshot applied last; older deliveries are ignored.
    catalog_revision BIGINT NOT NULL,
    -- Ed25519 key pair of the event: tickets are signed with it, door staff verify offline.
    signing_key_pkcs8 TEXT NOT NULL,
    public_key TEXT NOT NULL
);

CREATE TABLE ticket_types (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    name TEXT NOT NULL,
    price_minor BIGINT NOT NULL,
    capacity BIGINT NOT NULL,
    -- How many inventory rows the capacity is spread over.
    shards BIGINT NOT NULL
);
CREATE INDEX ticket_types_event ON ticket_types (event_id);

-- The inventory of a ticket type, spread over several rows ("shards") so that buyers of one
-- ticket type do not all queue on one row. Per shard, available + held + sold never changes,
-- and the CHECKs make overselling impossible even for a buggy statement.
CREATE TABLE inventory_shards (
    ticket_type_id TEXT NOT NULL REFERENCES ticket_types (id),
    shard BIGINT NOT NULL,
    available BIGINT NOT NULL CHECK (available >= 0),
    held BIGINT NOT NULL CHECK (held >= 0),
    sold BIGINT NOT NULL CHECK (sold >= 0),
    PRIMARY KEY (ticket_type_id, shard)
);

-- The saga's state is the order's status: pending_payment, authorizing, paid, expired,
-- cancelled, refunding, refunded (see saga.rs).
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    buyer_id TEXT NOT NULL,
    event_id TEXT NOT NULL REFERENCES events (id),
    status TEXT NOT NULL,
    currency TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    quantity BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- When the current payment attempt started (status authorizing), for crash recovery.
    authorizing_since BIGINT,
    paid_at BIGINT,
    payment_id TEXT,
    closed_reason TEXT
);
CREATE INDEX orders_buyer ON orders (buyer_id, id);
CREATE INDEX orders_status ON orders (status, expires_at);
CREATE INDEX orders_event ON orders (event_id, status);

CREATE TABLE order_items (
    order_id TEXT NOT NULL REFERENCES orders (id),
    ticket_type_id TEXT NOT NULL REFERENCES ticket_types (id),
    name TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_minor BIGINT NOT NULL,
    PRIMARY KEY (order_id, ticket_type_id)
);

-- Which shards an order's tickets were taken from, so they go back to the same rows.
CREATE TABLE order_allocations (
    order_id TEXT NOT NULL REFERENCES orders (id),
    ticket_type_id TEXT NOT NULL,
    shard BIGINT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, ticket_type_id, shard)
);

-- Tickets a buyer holds or owns per event, against the per-buyer cap (scalpers).
CREATE TABLE buyer_event_totals (
    buyer_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (buyer_id, event_id)
);

-- One row per admission of a paid order, issued once: (order_id, position) is unique.
CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    event_id TEXT NOT NULL,
    ticket_type_id TEXT NOT NULL,
    buyer_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    code TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    checked_in_at BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (order_id, position)
);
CREATE INDEX tickets_buyer ON tickets (buyer_id, id);
CREATE INDEX tickets_event ON tickets (event_id, status);

-- Idempotency keys of POST /v1/orders and POST /v1/orders/{id}/payment, scoped to the buyer
-- and the request path, with a fingerprint of the request and the first answer.
CREATE TABLE idempotency_keys (
    buyer_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
    response TEXT,
    -- An in-progress claim older than this was abandoned (a crash) and may be taken over.
    locked_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (buyer_id, scope, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
