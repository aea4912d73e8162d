-- Active tokens: the master's state, one row per token, per master name.
CREATE TABLE IF NOT EXISTS active_tokens (
    master          TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    owner           TEXT,
    expiration_time INTEGER,
    priority        REAL    NOT NULL DEFAULT 0,
    data            TEXT,
    PRIMARY KEY (master, name)
);
-- Archived tokens: finished instances, kept for the UI and retries. A name can be archived
-- more than once (each time at a new version), so the version is part of the key.
CREATE TABLE IF NOT EXISTS archived_tokens (
    master          TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    owner           TEXT,
    expiration_time INTEGER,
    priority        REAL    NOT NULL DEFAULT 0,
    data            TEXT,
    archived_at     INTEGER NOT NULL,
    PRIMARY KEY (master, name, version)
);
-- One row per master: the version high-water mark, written in every commit, so versions are
-- never reused across restarts.
CREATE TABLE IF NOT EXISTS masters (
    master        TEXT    NOT NULL PRIMARY KEY,
    version_floor INTEGER NOT NULL,
    created_at    TEXT    NOT NULL
);
