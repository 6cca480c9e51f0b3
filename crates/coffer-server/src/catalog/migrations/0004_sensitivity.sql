-- sensitivity recorded per component, so views, deletes and restores keep checking the
-- `sensitive` scope even after the configuration changes.
ALTER TABLE backup_components ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE restore_components ADD COLUMN sensitive INTEGER NOT NULL DEFAULT 0;
