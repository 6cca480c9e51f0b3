-- Checks of targets' repositories (POST /api/v1/targets/{name}/check and check schedules), with
-- the damage they found by pack and by affected backup.
CREATE TABLE checks (
    id          TEXT PRIMARY KEY,
    target      TEXT NOT NULL,
    schedule    TEXT,
    -- What part of the packs' content was read: "all", "3/30", "10%" … (NULL: structure only).
    read_data   TEXT,
    status      TEXT NOT NULL CHECK (status IN ('CHECKING', 'READY', 'ERROR')),
    error       TEXT,
    -- Errors, warnings, damaged packs and affected backups (JSON).
    report      TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX checks_by_target ON checks (target, created_at);
