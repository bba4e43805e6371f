-- sessiongate schema 3: "the latest sessions by activity" (the health
-- report's recent activity) orders by last_activity and then session_id.
-- With session_id in the index the database reads just the first rows of
-- the index instead of sorting every row of a status.
DROP INDEX sessions_status_last_activity;
CREATE INDEX sessions_status_last_activity ON sessions (status, last_activity, session_id);
