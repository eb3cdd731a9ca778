-- Snapshots of aggregates' folded state (store::snapshots): at most one per stream, the
-- latest. A cache, never a source of truth: deleting any or all rows only makes the next
-- cold load of those streams fold from their first event. `state` is JSON of an aggregate
-- that holds nothing personal in the clear; `snapshot_version` is that aggregate's shape
-- version, and a row of another version is ignored and overwritten.
CREATE TABLE stream_snapshots (
    stream_id        TEXT   PRIMARY KEY,
    aggregate        TEXT   NOT NULL,
    snapshot_version BIGINT NOT NULL,
    event_count      BIGINT NOT NULL,
    state            TEXT   NOT NULL,
    taken_at         BIGINT NOT NULL
);
