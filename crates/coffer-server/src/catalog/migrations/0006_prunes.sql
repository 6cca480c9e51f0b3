-- Prunes started through the API (POST /api/v1/targets/{name}/prune): their state and report.
CREATE TABLE prunes (
    id          TEXT PRIMARY KEY,
    target      TEXT NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    report      TEXT,
    grace_secs  INTEGER,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX prunes_by_target ON prunes (target, created_at);
