-- The account whose credential made a request, so that deleting the account also deletes
-- the responses kept for replay (they may hold personal data).
ALTER TABLE idempotency_keys ADD COLUMN account_id TEXT;
CREATE INDEX idempotency_keys_account ON idempotency_keys (account_id);
