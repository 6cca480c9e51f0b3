-- Copies of backups to a schedule's extra targets (copy_to): the same snapshots in a second
-- repository, verified.
CREATE TABLE backup_copies (
    backup_id   TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
    target      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('COPYING', 'READY', 'ERROR')),
    error       TEXT,
    -- The copies' snapshot ids (JSON array), for deleting them with the backup.
    snapshots   TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (backup_id, target)
);
