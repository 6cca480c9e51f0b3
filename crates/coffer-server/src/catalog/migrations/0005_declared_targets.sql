-- Targets declared under [[targets]] in coffer.toml: kept in step with the file at start and
-- read-only over the API.
ALTER TABLE targets ADD COLUMN declared INTEGER NOT NULL DEFAULT 0;
