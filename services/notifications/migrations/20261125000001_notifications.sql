-- Notifications' own database: read models of what the emails talk about (events and who holds
-- tickets for them), kept from domain events, and every email as a delivery record, which is at
-- once the send queue, the dead-letter store and (without an SMTP server) the dev inbox.

-- Catalog's events as last heard of, for the details emails show.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    venue_name TEXT NOT NULL,
    venue_city TEXT NOT NULL,
    venue_country TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    -- Catalog's revision of the snapshot applied last; older deliveries are ignored.
    revision BIGINT NOT NULL,
    -- The organizer's reason, once cancelled: holders who hear of it late are told it too.
    cancel_reason TEXT
);

-- Who holds tickets: one row per order whose tickets were issued. The buyer's email is cached
-- here, so that telling every holder of an event about a change needs no call to identity.
CREATE TABLE holders (
    order_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    buyer_id TEXT NOT NULL,
    -- NULL when identity did not know the buyer: such a holder gets no email.
    buyer_email TEXT,
    -- JSON array of {ticket_id, ticket_type_id, ticket_type_name, code}.
    tickets TEXT NOT NULL,
    -- valid, or void once the order was refunded or cancelled.
    status TEXT NOT NULL,
    -- Why the order became void; "the event was cancelled" holders still hear of the cancellation.
    void_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX holders_event ON holders (event_id, status);
CREATE INDEX holders_buyer ON holders (buyer_id);

-- One email to one recipient. The consumer queues it in the transaction that claims the domain
-- event; the sender moves it to sent, or after the last failed attempt to dead.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    -- The domain event that caused it: with recipient and kind, what makes an email happen once.
    message_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    -- order_confirmation, event_changed, event_cancelled, order_refunded, hold_expired.
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    -- What the email is about, for operators and for "has this holder heard of it" questions.
    event_id TEXT,
    order_id TEXT,
    -- queued, sent or dead.
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT,
    -- When the sender may try (again); while a send is in flight, the end of its lease.
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    -- smtp or dev_inbox: the dev inbox lists only what it kept itself.
    sent_via TEXT,
    UNIQUE (message_id, recipient, kind)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_listed ON deliveries (status, created_at);
CREATE INDEX deliveries_event ON deliveries (event_id, kind, recipient);

-- Files that go with an email, such as the inline QR code of each ticket.
CREATE TABLE delivery_attachments (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id),
    position BIGINT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    -- Set for inline parts that the HTML shows as cid:<content_id>.
    content_id TEXT NOT NULL,
    size BIGINT NOT NULL,
    -- The bytes, base64 (standard alphabet, padded).
    data TEXT NOT NULL,
    PRIMARY KEY (delivery_id, position)
);
