-- Restore drills: a backup restored into scratch places and proved, per component.
CREATE TABLE drills (
    id          TEXT PRIMARY KEY,
    backup_id   TEXT NOT NULL,
    -- The schedule that asked for it, if one did.
    schedule    TEXT,
    -- Names scratch places (coffer_drill_<tag> databases, staging/drills/<tag>).
    tag         TEXT NOT NULL,
    -- The components drilled (JSON array), for the cleanup after a crash.
    components  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('DRILLING', 'READY', 'ERROR')),
    error       TEXT,
    -- Per component: outcome, seconds, what was proved or why it failed (JSON).
    report      TEXT,
    seconds     REAL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX drills_by_backup ON drills (backup_id, created_at);
