-- Tamper evidence: one link per event of the log, written by the chainer (a follower of the
-- log, checkpoint `event-chain` in projection_checkpoints) in global order. `hash` is the
-- lower-case hex SHA-256 of the previous link's hash and the event's canonical bytes
-- (projections::chain). Never rebuilt: a rebuild would re-chain whatever the log holds now.
CREATE TABLE event_chain (
    global_position BIGINT PRIMARY KEY,
    hash            TEXT   NOT NULL
);
