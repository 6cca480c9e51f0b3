-- Notification destinations ([[notifications]] and /api/v1/notifications), and the conditions
-- (backups failing, a component's backups too old) told to them: each is told once when it
-- starts holding and once when it stops.
CREATE TABLE notifications (
    name        TEXT PRIMARY KEY,
    -- The spec as JSON, sealed with the server key (it may hold the signing secret).
    spec_sealed BLOB NOT NULL,
    declared    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE TABLE alert_state (
    key     TEXT PRIMARY KEY,
    kind    TEXT NOT NULL,
    since   INTEGER NOT NULL,
    summary TEXT NOT NULL
);
UPDATE tokens SET scopes = json_insert(scopes, '$[#]', 'notifications:read', '$[#]', 'notifications:write')
 WHERE EXISTS (SELECT 1 FROM json_each(tokens.scopes) WHERE value = 'admin');
UPDATE users SET scopes = json_insert(scopes, '$[#]', 'notifications:read', '$[#]', 'notifications:write')
 WHERE EXISTS (SELECT 1 FROM json_each(users.scopes) WHERE value = 'admin');
