-- Failed logins per account, for the growing delay before the next try (sessions.rs), and the
-- clients an account logged in from, which the delay never holds back: an attacker spread over
-- many addresses is slowed down, and cannot lock the owner out of their usual device.
CREATE TABLE login_failures (
    -- Lower-cased, known account or not: an unknown email is throttled alike, so the delay
    -- tells nothing about which accounts exist.
    email_lower TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
);

CREATE TABLE known_clients (
    user_id TEXT NOT NULL REFERENCES users (id),
    -- SHA-256 of the client address: who logged in from where is not kept in the clear.
    client_hash TEXT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_hash)
);
