-- sessiongate schema 8 (SQLite): the gateway's upstream sessions, and the
-- upstream that served each logged request.
--
-- One row per client session and upstream: what the gateway needs to use
-- the upstream session again after it restarts, or to start a new one the
-- same way. upstream_session_id is the upstream's Mcp-Session-Id (NULL for
-- stdio and for upstreams that issue none); initialize_params is the
-- `params` of the initialize the gateway sent, as JSON text; subscriptions
-- a JSON array of the resource URIs the client subscribed to, as the
-- upstream names them. The gateway deletes a session's rows when it ends
-- (found by the primary key's first column); the triggers below delete
-- them in the same transaction as the session's end, when it can never
-- come back (its client or an admin ended it: a timed-out session may be
-- revived with its reconnect token, and then needs them), and as the
-- session's row is deleted.
CREATE TABLE upstream_mappings (
    session_id          TEXT    NOT NULL
                        CHECK (length(session_id) = 32 AND session_id NOT GLOB '*[^0-9a-f]*'),
    upstream            TEXT    NOT NULL,
    upstream_session_id TEXT,
    protocol_version    TEXT    NOT NULL,
    initialize_params   TEXT    NOT NULL DEFAULT '{}',
    log_level           TEXT,
    subscriptions       TEXT    NOT NULL DEFAULT '[]',
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (session_id, upstream)
) STRICT;

-- Counting the sessions mapped to each upstream.
CREATE INDEX upstream_mappings_upstream ON upstream_mappings (upstream);

CREATE TRIGGER upstream_mappings_of_final_ends
AFTER UPDATE OF status ON sessions
WHEN NEW.status = 'disconnected'
     AND NEW.disconnect_reason IN ('client_disconnect', 'admin_terminated')
BEGIN
    DELETE FROM upstream_mappings WHERE session_id = NEW.session_id;
END;

CREATE TRIGGER upstream_mappings_of_deleted_sessions
AFTER DELETE ON sessions
BEGIN
    DELETE FROM upstream_mappings WHERE session_id = OLD.session_id;
END;

-- The upstream a request was relayed to; NULL for the built-in tools and
-- the protocol's own methods.
ALTER TABLE requests ADD COLUMN upstream TEXT;
