-- exports (spooled files in <data_dir>/exports).
CREATE TABLE exports (
    id TEXT PRIMARY KEY,
    backup_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('EXPORTING', 'READY', 'ERROR', 'EXPIRED')),
    error TEXT,
    sensitive INTEGER NOT NULL,
    protection TEXT NOT NULL,
    file_name TEXT NOT NULL,
    components TEXT NOT NULL,
    size INTEGER,
    sha256 TEXT,
    md5 TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    expires_at INTEGER
);
CREATE INDEX exports_backup ON exports(backup_id);
