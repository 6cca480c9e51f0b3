-- The audit log: every state-changing request and every job's end, hash-chained (see
-- coffer_engine::audit). Copied to each owned target's repository under coffer/audit/.
CREATE TABLE audit (
    seq     INTEGER PRIMARY KEY,
    time    INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    address TEXT,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    outcome TEXT NOT NULL,
    prev    TEXT NOT NULL,
    hash    TEXT NOT NULL
);
