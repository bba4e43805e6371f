-- sessiongate schema 2 (SQLite): reconnect token rotation and the event log.

-- The hash of the token used last, so a replayed token is told apart from
-- one that was merely superseded.
ALTER TABLE sessions ADD COLUMN reconnect_used_hash TEXT;

-- Server-to-client SSE messages of sessionful sessions, for resuming a
-- stream with Last-Event-ID. stream_id is 'r' (a request's response stream)
-- or 'g' (the standalone GET stream) and 16 hex digits; seq counts from 1.
CREATE TABLE session_events (
    session_id TEXT    NOT NULL,
    stream_id  TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    message    TEXT    NOT NULL,
    PRIMARY KEY (session_id, stream_id, seq)
) STRICT, WITHOUT ROWID;

-- Pruning by age.
CREATE INDEX session_events_created_at ON session_events (created_at);
