-- Each event's waiting room as its domain events tell it (waiting_room.room_opened,
-- buyers_admitted, sold_out): when it opened and with how many early arrivals, how many were
-- admitted and how many still waited at the last admission step, and whether it is sold out.
-- Each value keeps the newest event's (by its time), so redeliveries and reordering converge.
CREATE TABLE waiting_rooms (
    event_id TEXT PRIMARY KEY,
    opened_at BIGINT,
    early_arrivals BIGINT,
    admitted_total BIGINT NOT NULL DEFAULT 0,
    queued BIGINT NOT NULL DEFAULT 0,
    -- When the admitted and queued counts were taken.
    counted_at BIGINT NOT NULL DEFAULT 0,
    sold_out BIGINT NOT NULL DEFAULT 0,
    sold_out_changed_at BIGINT NOT NULL DEFAULT 0
);
