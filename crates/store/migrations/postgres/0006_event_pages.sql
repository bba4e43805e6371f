-- sessiongate schema 6 (PostgreSQL): the event log as pages, one row per
-- session and batch instead of one per message. (The SQLite schema's note
-- says more.)
CREATE TABLE session_event_pages (
    session_id TEXT   NOT NULL,
    page_id    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    events     BYTEA  NOT NULL,
    PRIMARY KEY (session_id, page_id)
);

CREATE INDEX session_event_pages_created_at ON session_event_pages (created_at);

INSERT INTO session_event_pages (session_id, page_id, created_at, events)
SELECT session_id,
       ((created_at + 1) << 20)
           + row_number() OVER (PARTITION BY session_id, created_at ORDER BY stream_id, seq),
       created_at,
       convert_to(format('%s %s %s', stream_id, seq, octet_length(message)) || chr(10) || message, 'UTF8')
FROM session_events;

DROP TABLE session_events;
