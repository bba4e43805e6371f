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

ALTER TABLE requests ADD COLUMN upstream TEXT;
