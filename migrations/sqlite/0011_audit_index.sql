-- The audit index (projections::audit_index): which events of the log belong to which
-- account, so that an audit page reads the account's own events instead of the whole log.
-- Written by a follower of the log in global order (checkpoint `audit-index` in
-- projection_checkpoints), from the events as stored; `audit_links` is its memory of
-- what earlier events implied: the current members of each workspace stream, and the
-- account each purchase and invoice stream belongs to.
CREATE TABLE audit_index (
    account_id TEXT   NOT NULL,
    position   BIGINT NOT NULL,
    stream_id  TEXT   NOT NULL,
    revision   BIGINT NOT NULL,
    PRIMARY KEY (account_id, position)
);
CREATE TABLE audit_links (
    stream_id  TEXT NOT NULL,
    account_id TEXT NOT NULL,
    PRIMARY KEY (stream_id, account_id)
);
