-- Idempotency keys are scoped to a named operation, no longer to the public request path
-- (which belongs to the gateway and may change): 'POST /v1/orders' becomes 'place_order' and
-- 'POST /v1/orders/<order id>/payment' becomes 'pay_order:<order id>'. Keys are kept 24 hours,
-- so the ones stored before this deploy are rewritten: a retry across the deploy still finds
-- its first answer. Portable SQL (substr, length and || mean the same on PostgreSQL and SQLite);
-- 'POST /v1/orders/' is 16 characters and '/payment' 8.
UPDATE idempotency_keys SET scope = 'place_order' WHERE scope = 'POST /v1/orders';
UPDATE idempotency_keys
SET scope = 'pay_order:' || substr(scope, 17, length(scope) - 24)
WHERE scope LIKE 'POST /v1/orders/%/payment';
