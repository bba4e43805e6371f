-- sessiongate schema 1 (SQLite): sessions and the request log.
--
-- Time: every timestamp column (connected_at, last_activity, disconnected_at,
-- reconnect_expires_at, started_at) holds milliseconds since the Unix epoch,
-- UTC, as a 64-bit INTEGER (SQLite's INTEGER is PostgreSQL's BIGINT).
-- Durations carry their unit in their name: total_duration_ms, duration_us.
-- JSON columns hold JSON text. Tables are STRICT, so a value of the wrong
-- type is refused on write instead of being read back as garbage.

CREATE TABLE sessions (
    -- 128 random bits as 32 lowercase hex digits.
    session_id           TEXT    NOT NULL PRIMARY KEY
                         CHECK (length(session_id) = 32 AND session_id NOT GLOB '*[^0-9a-f]*'),
    client_type          TEXT    NOT NULL,
    client_name          TEXT,
    client_version       TEXT,
    client_capabilities  TEXT    NOT NULL DEFAULT '{}',
    protocol_version     TEXT    NOT NULL,
    principal            TEXT,
    remote_addr          TEXT,
    user_agent           TEXT,
    connected_at         INTEGER NOT NULL,
    last_activity        INTEGER NOT NULL,
    status               TEXT    NOT NULL DEFAULT 'active'
                         CHECK (status IN ('active', 'disconnected')),
    disconnected_at      INTEGER,
    disconnect_reason    TEXT,
    total_duration_ms    INTEGER,
    request_count        INTEGER NOT NULL DEFAULT 0,
    metadata             TEXT    NOT NULL DEFAULT '{}',
    -- Reconnection, for a later version: a hash of the token a client may
    -- present to resume the session, when that token expires, and how many
    -- times the session was resumed.
    reconnect_token_hash TEXT,
    reconnect_expires_at INTEGER,
    reconnect_count      INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Active sessions at startup, the latest by activity, counts by status.
CREATE INDEX sessions_status_last_activity ON sessions (status, last_activity);
-- The 24 h connection window, and listing newest first.
CREATE INDEX sessions_connected_at ON sessions (connected_at);
-- Listing one status newest first.
CREATE INDEX sessions_status_connected_at ON sessions (status, connected_at);
-- Sessions that ended since a point in time.
CREATE INDEX sessions_status_disconnected_at ON sessions (status, disconnected_at);
-- Listing one client type newest first.
CREATE INDEX sessions_client_type_connected_at ON sessions (client_type, connected_at);

CREATE TABLE requests (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The session of sessionful traffic; NULL for stateless traffic.
    session_id    TEXT,
    -- The client a stateless request is attributed to.
    client_key    TEXT,
    method        TEXT    NOT NULL,
    tool_name     TEXT,
    started_at    INTEGER NOT NULL,
    duration_us   INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('success', 'error')),
    error_code    INTEGER,
    error_message TEXT,
    bytes_in      INTEGER NOT NULL DEFAULT 0,
    bytes_out     INTEGER NOT NULL DEFAULT 0
) STRICT;

-- A session's latest requests (the rowid, i.e. id, breaks ties implicitly).
CREATE INDEX requests_session_started_at ON requests (session_id, started_at)
    WHERE session_id IS NOT NULL;
-- Pruning by age.
CREATE INDEX requests_started_at ON requests (started_at);
