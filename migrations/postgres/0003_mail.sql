-- E-mail. The notifier's own state, folded in log order with its checkpoint, so that a
-- preference change applies exactly to the events after it (no row: the default).
CREATE TABLE notifier_preferences (
    account_id TEXT NOT NULL,
    toggle     TEXT NOT NULL,
    enabled    BIGINT NOT NULL,
    PRIMARY KEY (account_id, toggle)
);

-- Each account's balance as of the notifier's checkpoint, and whether it is below the
-- alert threshold, so the alert goes out once per crossing.
CREATE TABLE notifier_balances (
    account_id TEXT PRIMARY KEY,
    balance    BIGINT NOT NULL,
    low        BIGINT NOT NULL
);

-- Which account an invoice bills (its payment event only names the invoice).
CREATE TABLE notifier_invoices (
    invoice_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    number     TEXT NOT NULL
);

-- The queue of the embedded default (no broker): published messages wait here.
CREATE TABLE mail_outbox (
    message_id   TEXT PRIMARY KEY,
    body         TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    available_at BIGINT NOT NULL,
    last_error   TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX mail_outbox_ready ON mail_outbox (available_at);

-- One row per message a mailer took on: `sending` while a mailer holds it (until
-- `lease_until`), then `sent` or `skipped`. A redelivered copy of a sent message is
-- acknowledged, not sent again; two mailers never send the same message at once.
CREATE TABLE mail_deliveries (
    message_id  TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    claimed_by  TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Messages that kept failing (also left in the broker's dead-letter queue).
CREATE TABLE mail_dead_letters (
    message_id TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    dead_at    BIGINT NOT NULL
);
