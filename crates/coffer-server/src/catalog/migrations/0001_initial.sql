-- the first schema.
CREATE TABLE targets (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    spec_sealed BLOB NOT NULL,
    password_sealed BLOB NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('own', 'attach')),
    is_default INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE backups (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    component_count INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX backups_label ON backups(label);
CREATE TABLE backup_components (
    backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
    component TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    snapshot_id TEXT,
    files INTEGER,
    bytes INTEGER,
    bytes_added INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (backup_id, component)
);
CREATE TABLE restores (
    id TEXT PRIMARY KEY,
    backup_id TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE TABLE restore_components (
    restore_id TEXT NOT NULL REFERENCES restores(id) ON DELETE CASCADE,
    component TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    notes TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (restore_id, component)
);
CREATE TABLE job_log (
    job_id TEXT NOT NULL,
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX job_log_job ON job_log(job_id, seq);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    components TEXT,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
