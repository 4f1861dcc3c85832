-- Analytics' own database: every domain event it applied (the log the read model is rebuilt
-- from) and the read model itself. The read model stores facts, not running totals: each
-- table converges to the same rows whatever order the events arrive in, and the figures are
-- aggregated when they are read.

-- Every envelope applied, as it arrived. Never deleted by a rebuild: it is what a rebuild
-- replays, in (occurred_at, message_id) order.
CREATE TABLE event_log (
    message_id TEXT PRIMARY KEY,
    routing_key TEXT NOT NULL,
    -- The event (of catalog) the envelope is about, so "as of" is one indexed MAX.
    event_id TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    -- The whole envelope as JSON text, so a rebuild can decode it with today's code.
    envelope TEXT NOT NULL
);
CREATE INDEX event_log_replay ON event_log (occurred_at, message_id);
CREATE INDEX event_log_event ON event_log (event_id, occurred_at);

-- The newest snapshot of each event catalog announced.
CREATE TABLE events (
    event_id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    currency TEXT NOT NULL,
    -- Catalog's revision of the snapshot held; an older snapshot arriving late is ignored.
    revision BIGINT NOT NULL
);

-- The ticket types of the newest snapshot only (replaced with it), for capacities and names.
CREATE TABLE ticket_types (
    event_id TEXT NOT NULL,
    ticket_type_id TEXT NOT NULL,
    -- Place in the snapshot, so the figures list ticket types the way catalog does.
    ordinal BIGINT NOT NULL,
    name TEXT NOT NULL,
    price_minor BIGINT NOT NULL,
    capacity BIGINT NOT NULL,
    PRIMARY KEY (event_id, ticket_type_id)
);

-- One row per order with the furthest status heard of: placed (rank 1) < paid, expired,
-- cancelled (rank 2) < refunded (rank 3). A status never gives way to a lower rank.
CREATE TABLE orders (
    order_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    status TEXT NOT NULL,
    status_rank BIGINT NOT NULL,
    -- Tickets in the order (the sum of its lines), so per-minute sales need no join.
    quantity BIGINT NOT NULL,
    total_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- From OrderPaid, whenever it arrives; groups sales by minute.
    paid_at BIGINT,
    -- When the event that set the current status occurred, for operators.
    updated_at BIGINT NOT NULL
);
CREATE INDEX orders_event ON orders (event_id, status);

CREATE TABLE order_lines (
    order_id TEXT NOT NULL,
    ticket_type_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    unit_price_minor BIGINT NOT NULL,
    PRIMARY KEY (order_id, ticket_type_id)
);

-- A ticket is checked in once, however often the scan is announced.
CREATE TABLE checkins (
    ticket_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    ticket_type_id TEXT NOT NULL,
    checked_in_at BIGINT NOT NULL
);
CREATE INDEX checkins_event ON checkins (event_id, ticket_type_id);

-- A counter per event, bumped by every applied event of it: live watchers on any replica poll
-- this one row to learn that the figures may have changed. Not part of the read model, so a
-- rebuild bumps it instead of resetting it.
CREATE TABLE event_versions (
    event_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
