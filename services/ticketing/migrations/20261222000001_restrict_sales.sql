-- Limits catalog applied synchronously (RestrictSales) before committing an update that takes
-- something away: an earlier start, lower caps. They hold alongside the snapshot's fields (the
-- stricter of the two wins) until a snapshot of their revision or a newer one is applied.
ALTER TABLE events ADD COLUMN restricted_revision BIGINT;
ALTER TABLE events ADD COLUMN restricted_starts_at BIGINT;
ALTER TABLE events ADD COLUMN restricted_max_per_order BIGINT;
ALTER TABLE events ADD COLUMN restricted_max_per_buyer BIGINT;
