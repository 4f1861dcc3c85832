-- The waiting rooms' figures join the read model: their events are logged and replayed by a
-- rebuild like the sales', and served with the sales figures. Two more figures are kept as the
-- events are applied: the admissions that ran out unused (waiting_room.admissions_expired, the
-- largest total heard, since it only grows), and the admissions per 10 seconds, so that "admitted
-- in the last minute" is a read of six rows however long the on-sale.
ALTER TABLE waiting_rooms ADD COLUMN expired_total BIGINT NOT NULL DEFAULT 0;

CREATE TABLE waiting_room_admissions (
    event_id TEXT NOT NULL,
    -- Start of the 10-second bucket, Unix ms.
    bucket_ms BIGINT NOT NULL,
    admitted BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, bucket_ms)
);
