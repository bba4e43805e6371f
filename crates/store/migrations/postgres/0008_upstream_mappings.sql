-- sessiongate schema 8 (PostgreSQL): the gateway's upstream sessions, and
-- the upstream that served each logged request. (The SQLite schema's note
-- says more.)
CREATE TABLE upstream_mappings (
    session_id          TEXT   NOT NULL,
    upstream            TEXT   NOT NULL,
    upstream_session_id TEXT,
    protocol_version    TEXT   NOT NULL,
    initialize_params   JSONB  NOT NULL DEFAULT '{}',
    log_level           TEXT,
    subscriptions       JSONB  NOT NULL DEFAULT '[]',
    updated_at          BIGINT NOT NULL,
    PRIMARY KEY (session_id, upstream)
);

CREATE INDEX upstream_mappings_upstream ON upstream_mappings (upstream);

-- A session that can never come back, or whose row is deleted, takes its
-- mappings with it in the same transaction.
CREATE FUNCTION drop_upstream_mappings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM upstream_mappings WHERE session_id = OLD.session_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER upstream_mappings_of_final_ends
AFTER UPDATE OF status ON sessions
FOR EACH ROW
WHEN (NEW.status = 'disconnected'
      AND NEW.disconnect_reason IN ('client_disconnect', 'admin_terminated'))
EXECUTE FUNCTION drop_upstream_mappings();

CREATE TRIGGER upstream_mappings_of_deleted_sessions
AFTER DELETE ON sessions
FOR EACH ROW
EXECUTE FUNCTION drop_upstream_mappings();

ALTER TABLE requests ADD COLUMN upstream TEXT;
