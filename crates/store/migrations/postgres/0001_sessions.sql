-- sessiongate schema 1 (PostgreSQL): sessions and the request log.
--
-- Time: every timestamp column (connected_at, last_activity, disconnected_at,
-- reconnect_expires_at, started_at) is a BIGINT of milliseconds since the
-- Unix epoch, UTC, the same representation as in SQLite.
-- Durations carry their unit in their name: total_duration_ms, duration_us.

CREATE TABLE sessions (
    -- 128 random bits as 32 lowercase hex digits.
    session_id           TEXT    NOT NULL,
    client_type          TEXT    NOT NULL,
    client_name          TEXT,
    client_version       TEXT,
    client_capabilities  JSONB   NOT NULL DEFAULT '{}',
    protocol_version     TEXT    NOT NULL,
    principal            TEXT,
    remote_addr          TEXT,
    user_agent           TEXT,
    connected_at         BIGINT  NOT NULL,
    last_activity        BIGINT  NOT NULL,
    status               TEXT    NOT NULL DEFAULT 'active',
    disconnected_at      BIGINT,
    disconnect_reason    TEXT,
    total_duration_ms    BIGINT,
    request_count        BIGINT  NOT NULL DEFAULT 0,
    metadata             JSONB   NOT NULL DEFAULT '{}',
    -- Reconnection, for a later version: a hash of the token a client may
    -- present to resume the session, when that token expires, and how many
    -- times the session was resumed.
    reconnect_token_hash TEXT,
    reconnect_expires_at BIGINT,
    reconnect_count      INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT sessions_pkey PRIMARY KEY (session_id),
    CONSTRAINT sessions_session_id_check CHECK (session_id ~ '^[0-9a-f]{32}$'),
    CONSTRAINT sessions_status_check CHECK (status IN ('active', 'disconnected'))
);

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
    id            BIGSERIAL PRIMARY KEY,
    -- The session of sessionful traffic; NULL for stateless traffic.
    session_id    TEXT,
    -- The client a stateless request is attributed to.
    client_key    TEXT,
    method        TEXT    NOT NULL,
    tool_name     TEXT,
    started_at    BIGINT  NOT NULL,
    duration_us   BIGINT  NOT NULL,
    status        TEXT    NOT NULL,
    error_code    BIGINT,
    error_message TEXT,
    bytes_in      BIGINT  NOT NULL DEFAULT 0,
    bytes_out     BIGINT  NOT NULL DEFAULT 0,
    CONSTRAINT requests_status_check CHECK (status IN ('success', 'error'))
);

-- A session's latest requests, ties broken by insertion order.
CREATE INDEX requests_session_started_at ON requests (session_id, started_at, id)
    WHERE session_id IS NOT NULL;
-- Pruning by age.
CREATE INDEX requests_started_at ON requests (started_at);
