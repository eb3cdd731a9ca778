-- The event log.
--
-- Global order without gaps: a bare sequence is not enough, because a transaction that
-- drew position 10 can commit after one that drew 11, and a reader that saw 11 would skip
-- 10. Each event therefore records the id of the transaction that wrote it, readers only
-- return rows written by transactions older than the oldest one still running
-- (pg_snapshot_xmin), and the position is derived from that transaction id:
-- (xid << 20) + index within the transaction. Positions then grow in the order in which
-- they become visible, so "read after P" never misses a late commit, while appends to
-- different streams run fully in parallel (no global lock).
--
-- Optimistic concurrency is the unique (stream_id, stream_revision) key: an append
-- inserts the next revisions, and a concurrent append to the same stream fails on it.
CREATE TABLE events (
    global_position BIGINT      PRIMARY KEY,
    transaction_id  XID8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        UUID        NOT NULL UNIQUE,
    stream_id       TEXT        NOT NULL,
    stream_revision BIGINT      NOT NULL,
    event_type      TEXT        NOT NULL,
    schema_version  INTEGER     NOT NULL,
    data            JSONB       NOT NULL,
    metadata        JSONB       NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (stream_id, stream_revision)
);

CREATE TABLE projection_checkpoints (
    name       TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE idempotency_keys (
    scope         TEXT PRIMARY KEY,
    request_hash  TEXT NOT NULL,
    status        INTEGER,
    content_type  TEXT,
    body          BYTEA,
    created_at    BIGINT NOT NULL,
    completed_at  BIGINT
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE data_keys (
    subject_id   TEXT PRIMARY KEY,
    wrapped_key  BYTEA,
    created_at   BIGINT NOT NULL,
    destroyed_at BIGINT
);
