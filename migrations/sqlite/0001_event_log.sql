-- The event log. SQLite has one writer at a time, so AUTOINCREMENT positions are assigned
-- and committed in the same order: the global order has no gaps by construction.
CREATE TABLE events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE,
    stream_id       TEXT    NOT NULL,
    stream_revision INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    data            TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    recorded_at     INTEGER NOT NULL,
    UNIQUE (stream_id, stream_revision)
);

-- The last revision of every stream: the optimistic-concurrency check.
CREATE TABLE streams (
    stream_id TEXT PRIMARY KEY,
    revision  INTEGER NOT NULL
);

-- One row per projector (and per subscriber such as the notifier): how far it has read.
CREATE TABLE projection_checkpoints (
    name       TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Responses to requests that carried an Idempotency-Key, replayed on retry.
CREATE TABLE idempotency_keys (
    scope         TEXT PRIMARY KEY,
    request_hash  TEXT NOT NULL,
    status        INTEGER,
    content_type  TEXT,
    body          BLOB,
    created_at    BIGINT NOT NULL,
    completed_at  BIGINT
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Per-account data keys, wrapped by the master key. Destroying a key (wrapped_key NULL)
-- makes the account's personal data in the log unreadable.
CREATE TABLE data_keys (
    subject_id   TEXT PRIMARY KEY,
    wrapped_key  BLOB,
    created_at   BIGINT NOT NULL,
    destroyed_at BIGINT
);
