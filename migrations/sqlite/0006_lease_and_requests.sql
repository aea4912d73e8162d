-- One master per master name (issue 23); see migrations/mysql/0006. On SQLite a lock on a file
-- beside the database keeps a second master out; the epoch is checked in every commit all the
-- same.
CREATE TABLE IF NOT EXISTS master_lease (
    master     TEXT    NOT NULL PRIMARY KEY,
    epoch      INTEGER NOT NULL,
    holder     TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    since_ms   INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
-- Outcomes of recent writes sent with an Idempotency-Key; see migrations/mysql/0006.
CREATE TABLE IF NOT EXISTS request_outcomes (
    master      TEXT    NOT NULL,
    request_key TEXT    NOT NULL,
    body_hash   TEXT    NOT NULL,
    answer      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (master, request_key)
);
CREATE INDEX IF NOT EXISTS request_outcomes_age ON request_outcomes (master, created_at);
