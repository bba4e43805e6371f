-- sessiongate schema 7 (SQLite): tasks of the tasks extension.
--
-- A task is a tools/call answered with a handle at once while its work goes
-- on. Its row is written before the handle is returned, its status changes
-- and its result or error as they happen. owner_kind/owner say who may see
-- it ('principal' or 'client', with the principal or the stateless client
-- key). expires_at is created_at + ttl_ms: the row is deleted then, and the
-- pruner finds it by that index. Unfinished rows ('working',
-- 'input_required') are failed at startup, found by the status index, which
-- also serves the API's listing by status, newest first.
CREATE TABLE tasks (
    -- 128 random bits as 32 lowercase hex digits.
    task_id        TEXT    NOT NULL PRIMARY KEY
                   CHECK (length(task_id) = 32 AND task_id NOT GLOB '*[^0-9a-f]*'),
    owner_kind     TEXT    NOT NULL CHECK (owner_kind IN ('principal', 'client')),
    owner          TEXT    NOT NULL,
    tool           TEXT    NOT NULL,
    status         TEXT    NOT NULL
                   CHECK (status IN ('working', 'input_required', 'completed', 'failed', 'cancelled')),
    status_message TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    ttl_ms         INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    -- The request's result as JSON text, once completed.
    result         TEXT,
    error_code     INTEGER,
    error_message  TEXT
) STRICT;

CREATE INDEX tasks_expires_at ON tasks (expires_at);
CREATE INDEX tasks_status_created_at ON tasks (status, created_at);
CREATE INDEX tasks_created_at ON tasks (created_at);
