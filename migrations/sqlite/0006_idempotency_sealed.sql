-- Responses kept for an account are sealed with its data key; this says which are.
ALTER TABLE idempotency_keys ADD COLUMN body_sealed BIGINT NOT NULL DEFAULT 0;
