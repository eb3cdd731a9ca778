-- The deliveries ledger's counts for the metrics, kept as messages are settled: counting
-- `mail_deliveries` at each scrape read one row for every message ever sent.
CREATE TABLE mail_delivery_counts (
    status   TEXT PRIMARY KEY,
    messages BIGINT NOT NULL
);
INSERT INTO mail_delivery_counts (status, messages)
    SELECT status, COUNT(*) FROM mail_deliveries
    WHERE status IN ('sent', 'skipped') GROUP BY status;
-- The messages being sent right now, counted without reading the ones done with.
CREATE INDEX mail_deliveries_sending ON mail_deliveries (message_id) WHERE status = 'sending';
