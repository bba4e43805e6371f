-- Retention prunes the event log session by session over the primary key,
-- so the time index only cost every append and every delete an extra
-- B-tree write.
DROP INDEX session_events_created_at;
