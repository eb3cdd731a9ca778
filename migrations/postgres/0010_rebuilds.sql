-- Rebuilds in progress (projections::rebuild): one row per rebuild, created in the same
-- transaction as its fresh tables and deleted in the one that swaps them in (or drops them
-- on failure). The rebuild renews `heartbeat_at` (unix seconds) while it runs; a row left
-- to go stale belongs to a rebuild whose process or server died, and the next rebuild or
-- start drops the tables it names. `shadow_tables` is a comma-separated list.
CREATE TABLE rebuilds (
    suffix        TEXT   PRIMARY KEY,
    projection    TEXT   NOT NULL,
    shadow_tables TEXT   NOT NULL,
    heartbeat_at  BIGINT NOT NULL
);
