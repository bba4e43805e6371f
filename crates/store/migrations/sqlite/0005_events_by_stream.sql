-- sessiongate schema 5 (SQLite): the event log keyed by stream first.
--
-- Keyed (session_id, stream_id, seq), the log took each busy session's
-- appends at that session's own place inside the B-tree: full leaves of
-- whole messages were split and their neighbours rebalanced, and retention
-- deleted from the middle again. Stream ids grow with time, so keyed by
-- stream first every append lands at the right edge and everything that
-- leaves goes from the left; the session comes last, to keep two nodes'
-- streams apart. The writer tracks each session's window itself
-- (core::lifecycle::events), so no index by session is needed; the one by
-- time, also appended at its right edge, serves pruning by age.
CREATE TABLE session_events_by_stream (
    stream_id  TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    session_id TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    message    TEXT    NOT NULL,
    PRIMARY KEY (stream_id, seq, session_id)
) STRICT, WITHOUT ROWID;

INSERT INTO session_events_by_stream (stream_id, seq, session_id, created_at, message)
SELECT stream_id, seq, session_id, created_at, message FROM session_events;
DROP TABLE session_events;
ALTER TABLE session_events_by_stream RENAME TO session_events;

CREATE INDEX session_events_created_at ON session_events (created_at);
