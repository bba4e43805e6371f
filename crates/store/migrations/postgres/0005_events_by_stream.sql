-- sessiongate schema 5 (PostgreSQL): the event log keyed by stream first.
--
-- Stream ids grow with time, so a key that starts with the stream takes
-- every append at the right edge of its B-tree and every prune from the
-- left, where one that started with the session took each busy session's
-- appends in the middle. The writer tracks each session's window itself, so
-- no index by session is needed; the one by time serves pruning by age. (The
-- SQLite schema's note says more.)
ALTER TABLE session_events DROP CONSTRAINT session_events_pkey;
ALTER TABLE session_events ADD PRIMARY KEY (stream_id, seq, session_id);
CREATE INDEX session_events_created_at ON session_events (created_at);
