-- Events with a waiting room: an order for one needs an admission token signed with the
-- room's key, whose public half the waiting room gives here (RequireAdmission) before it
-- stores the room.
CREATE TABLE admission_keys (
    event_id TEXT PRIMARY KEY,
    -- Raw Ed25519 public key, base64url.
    public_key TEXT NOT NULL,
    required_at BIGINT NOT NULL
);
