-- The waiting room's own database: each event's room. The queue itself lives in the queue
-- store (Redis under real infrastructure), so that a position poll never touches this table
-- with a write.

CREATE TABLE rooms (
    event_id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    -- Unix milliseconds.
    opens_at BIGINT NOT NULL,
    -- NULL: automatic, following what the sale can serve.
    admit_per_minute BIGINT CHECK (admit_per_minute BETWEEN 1 AND 1000000),
    admission_ttl_secs BIGINT NOT NULL CHECK (admission_ttl_secs BETWEEN 60 AND 3600),
    -- The room's Ed25519 key (PKCS#8, base64url) that signs its admissions; ticketing has
    -- the public half.
    signing_key TEXT NOT NULL,
    -- The seed of the draw of early arrivals, recorded before the draw so that every replica
    -- draws the same order and anyone can replay it afterwards.
    draw_seed TEXT,
    early_arrivals BIGINT,
    opened_at BIGINT,
    -- Set while nothing is left to sell (none available, none held).
    sold_out_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- The admission loop walks the rooms that are due.
CREATE INDEX rooms_opens_at ON rooms (opens_at);
