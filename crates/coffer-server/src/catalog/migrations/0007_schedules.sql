-- Schedules (coffer.toml's [[schedules]] and /api/v1/schedules), what each of their due times
-- became, and what retention needs to know about backups.
CREATE TABLE schedules (
    name          TEXT PRIMARY KEY,
    -- The spec as JSON, sealed with the server key (it may hold an export password).
    spec_sealed   BLOB NOT NULL,
    -- Declared in coffer.toml: read-only over the API.
    declared      INTEGER NOT NULL DEFAULT 0,
    -- What its creator was limited to (JSON array; NULL: every component) and whether it
    -- held `sensitive`: its runs act with no more than that.
    owner_components TEXT,
    owner_sensitive  INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    -- The newest due time already decided (run, skipped or missed), on the scheduler's clock.
    handled_at    INTEGER NOT NULL
);
CREATE TABLE schedule_runs (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule   TEXT NOT NULL REFERENCES schedules(name) ON DELETE CASCADE,
    -- The due time (the oldest of a missed range).
    due_at     INTEGER NOT NULL,
    -- The newest due time of a missed range.
    last_due_at INTEGER,
    missed_count INTEGER,
    -- When the scheduler decided, on its clock.
    decided_at INTEGER NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('STARTED', 'SKIPPED', 'MISSED', 'FAILED')),
    backup_id  TEXT,
    reason     TEXT,
    -- Set when a run is started by hand (POST /api/v1/schedules/{name}/run).
    by_hand    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX schedule_runs_by_schedule ON schedule_runs (schedule, seq);
ALTER TABLE backups ADD COLUMN schedule TEXT;
ALTER TABLE backups ADD COLUMN due_at INTEGER;
ALTER TABLE backups ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE backups ADD COLUMN verified_at INTEGER;
CREATE INDEX backups_by_schedule ON backups (schedule, status);
-- Tokens and users holding `admin` (the first admin token) get the new scopes, as they held
-- every scope there was.
UPDATE tokens SET scopes = json_insert(scopes, '$[#]', 'schedules:read', '$[#]', 'schedules:write')
 WHERE EXISTS (SELECT 1 FROM json_each(tokens.scopes) WHERE value = 'admin');
UPDATE users SET scopes = json_insert(scopes, '$[#]', 'schedules:read', '$[#]', 'schedules:write')
 WHERE EXISTS (SELECT 1 FROM json_each(users.scopes) WHERE value = 'admin');
