-- sessiongate schema 7 (PostgreSQL): tasks of the tasks extension. (The
-- SQLite schema's note says more.)
CREATE TABLE tasks (
    task_id        TEXT   NOT NULL PRIMARY KEY,
    owner_kind     TEXT   NOT NULL CHECK (owner_kind IN ('principal', 'client')),
    owner          TEXT   NOT NULL,
    tool           TEXT   NOT NULL,
    status         TEXT   NOT NULL
                   CHECK (status IN ('working', 'input_required', 'completed', 'failed', 'cancelled')),
    status_message TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    ttl_ms         BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    result         TEXT,
    error_code     BIGINT,
    error_message  TEXT
);

CREATE INDEX tasks_expires_at ON tasks (expires_at);
CREATE INDEX tasks_status_created_at ON tasks (status, created_at);
CREATE INDEX tasks_created_at ON tasks (created_at);
