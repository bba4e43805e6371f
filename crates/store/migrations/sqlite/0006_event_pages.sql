-- sessiongate schema 6 (SQLite): the event log as pages.
--
-- A row per message cost the streams more than the messages themselves
-- (two B-tree inserts, a record and a statement row each). The writer now
-- stores each batch as one page per session: the session's messages in
-- the order sent, each as a header line `<stream id> <seq> <length>` and
-- the message's bytes (core::stream::EventPage). Page ids grow with time
-- and are drawn after the streams they hold opened, so a stream is read
-- from the session's pages from its own id on; the index by time serves
-- pruning by age.
CREATE TABLE session_event_pages (
    session_id TEXT    NOT NULL,
    page_id    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    events     BLOB    NOT NULL,
    PRIMARY KEY (session_id, page_id)
) STRICT;

CREATE INDEX session_event_pages_created_at ON session_event_pages (created_at);

-- Events already logged become one page each, with ids above those of the
-- streams they belong to (a stream opens before its events are written,
-- and ids shift milliseconds left by 20 bits).
INSERT INTO session_event_pages (session_id, page_id, created_at, events)
SELECT session_id,
       ((created_at + 1) << 20)
           + row_number() OVER (PARTITION BY session_id, created_at ORDER BY stream_id, seq),
       created_at,
       CAST(printf('%s %d %d', stream_id, seq, octet_length(message)) || char(10) || message AS BLOB)
FROM session_events;

DROP TABLE session_events;
