-- The figures kept as events are applied, so that reading an event's figures costs a few rows
-- whatever the number of its orders. Each row is a running sum of deltas: the consumer adds, in
-- the transaction that applies an envelope (with its inbox claim), the difference between what
-- the order (or check-in) counted for before and what it counts for now. The facts of the first
-- migration stay: they give the previous state of an order, and `event_log` is what a rebuild
-- recomputes these tables from.

-- Per event: what is not a sum over ticket types.
CREATE TABLE event_figures (
    event_id TEXT PRIMARY KEY,
    orders_paid BIGINT NOT NULL,
    -- Totals of the paid orders, in minor units of the event's currency.
    revenue_minor BIGINT NOT NULL,
    -- When the newest event applied to this event occurred (Unix ms): the figures' "as of".
    as_of BIGINT NOT NULL
);

-- Per ticket type of an event, including ticket types the newest snapshot no longer lists.
-- Capacity and name stay in `ticket_types`: they come from the snapshot, not from deltas.
CREATE TABLE ticket_type_figures (
    event_id TEXT NOT NULL,
    ticket_type_id TEXT NOT NULL,
    sold BIGINT NOT NULL,
    held BIGINT NOT NULL,
    revenue_minor BIGINT NOT NULL,
    checkins BIGINT NOT NULL,
    PRIMARY KEY (event_id, ticket_type_id)
);

-- Paid orders per minute of payment. A minute whose sales were all refunded keeps a row of
-- zeros; readers skip it.
CREATE TABLE minute_figures (
    event_id TEXT NOT NULL,
    -- Start of the minute, Unix ms.
    minute_ms BIGINT NOT NULL,
    tickets BIGINT NOT NULL,
    revenue_minor BIGINT NOT NULL,
    PRIMARY KEY (event_id, minute_ms)
);

-- Figures of what was applied before this migration, summed once from the facts as reads used
-- to sum them (the same rules as the consumer's deltas), so that deltas from now on add to the
-- right base. `eventhive analytics rebuild` gives the same rows.
INSERT INTO ticket_type_figures (event_id, ticket_type_id, sold, held, revenue_minor, checkins)
SELECT o.event_id, l.ticket_type_id,
       SUM(CASE WHEN o.status = 'paid' THEN l.quantity ELSE 0 END),
       SUM(CASE WHEN o.status = 'placed' THEN l.quantity ELSE 0 END),
       SUM(CASE WHEN o.status = 'paid' THEN l.quantity * l.unit_price_minor ELSE 0 END),
       0
FROM order_lines l JOIN orders o ON o.order_id = l.order_id
GROUP BY o.event_id, l.ticket_type_id;

-- `WHERE true` tells SQLite's parser that ON CONFLICT is the upsert, not a join's ON.
INSERT INTO ticket_type_figures (event_id, ticket_type_id, sold, held, revenue_minor, checkins)
SELECT event_id, ticket_type_id, 0, 0, 0, COUNT(*) FROM checkins WHERE true GROUP BY event_id, ticket_type_id
ON CONFLICT (event_id, ticket_type_id) DO UPDATE SET checkins = excluded.checkins;

INSERT INTO event_figures (event_id, orders_paid, revenue_minor, as_of)
SELECT event_id, 0, 0, MAX(occurred_at) FROM event_log GROUP BY event_id;

UPDATE event_figures SET
    orders_paid = (SELECT COUNT(*) FROM orders o WHERE o.event_id = event_figures.event_id AND o.status = 'paid'),
    revenue_minor = (SELECT COALESCE(SUM(o.total_minor), 0) FROM orders o
                     WHERE o.event_id = event_figures.event_id AND o.status = 'paid');

INSERT INTO minute_figures (event_id, minute_ms, tickets, revenue_minor)
SELECT event_id, (paid_at / 60000) * 60000, SUM(quantity), SUM(total_minor) FROM orders
WHERE status = 'paid' AND paid_at IS NOT NULL
GROUP BY event_id, (paid_at / 60000) * 60000;
