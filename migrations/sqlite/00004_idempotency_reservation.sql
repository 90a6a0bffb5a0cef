-- Idempotency keys are reserved in the store before their request runs, so
-- that exactly one request per (tenant, route, key) executes, whichever
-- replica serves it. A row whose holder is set is a reservation: the
-- request holding it is still running, and reserved_until is when the
-- reservation lapses (its replica died mid-request) and another request
-- may take the key over. Storing the answer clears both; rows written
-- before this migration are answers.

-- +goose Up
ALTER TABLE idempotency_keys ADD COLUMN holder TEXT;
ALTER TABLE idempotency_keys ADD COLUMN reserved_until INTEGER;

-- +goose Down
DELETE FROM idempotency_keys WHERE holder IS NOT NULL;
ALTER TABLE idempotency_keys DROP COLUMN reserved_until;
ALTER TABLE idempotency_keys DROP COLUMN holder;
