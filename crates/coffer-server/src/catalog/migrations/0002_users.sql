-- users with passwords.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    components TEXT,
    created_at INTEGER NOT NULL,
    disabled_at INTEGER
);
