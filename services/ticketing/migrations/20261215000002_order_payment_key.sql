-- The Idempotency-Key of the request that started the order's current payment attempt, so that
-- a retry of that request, which found its first try's outcome unknown (a 503), is answered
-- with the paid order once the payment is known, rather than "already paid".
ALTER TABLE orders ADD COLUMN payment_key TEXT;
