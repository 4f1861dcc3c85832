-- Catalog's own database: events (with their venue) and ticket types.

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    venue_name TEXT NOT NULL,
    venue_city TEXT NOT NULL,
    venue_country TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    currency TEXT NOT NULL,
    max_tickets_per_order BIGINT NOT NULL,
    max_tickets_per_buyer BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'on_sale', 'cancelled')),
    cancel_reason TEXT,
    -- Lower-cased title and description, and city, so that search is case-insensitive on both
    -- backends (SQLite's lower() knows only ASCII).
    search_text TEXT NOT NULL,
    city_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- Public search walks on-sale events by (starts_at, id): the keyset of its page tokens.
CREATE INDEX events_search ON events (status, starts_at, id);
CREATE INDEX events_organization ON events (organization_id);

CREATE TABLE ticket_types (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    name TEXT NOT NULL,
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    capacity BIGINT NOT NULL CHECK (capacity > 0),
    created_at BIGINT NOT NULL,
    UNIQUE (event_id, name)
);
