-- Sales of an event can be closed by catalog's synchronous call (CloseSales), ahead of the
-- domain event that tells the cancellation. Kept apart from `status`, which follows catalog's
-- snapshots (a newer snapshot may still say on_sale if catalog crashed before committing its
-- cancellation): once set, a close is never undone.
ALTER TABLE events ADD COLUMN sales_closed_at BIGINT;
ALTER TABLE events ADD COLUMN sales_closed_reason TEXT;
ALTER TABLE events ADD COLUMN sales_closed_revision BIGINT;
