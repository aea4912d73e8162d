-- The audit log: every operator action (CLI and UI), who, when, through which API token, what,
-- on which workflow/instance/jobs, and the result. Written by the master in the same commits as
-- tokens; read by the UI's /audit/ page.
CREATE TABLE IF NOT EXISTS audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    master   TEXT    NOT NULL,
    at       REAL    NOT NULL,
    actor    TEXT    NOT NULL,
    via      TEXT    NOT NULL,
    command  TEXT    NOT NULL,
    workflow TEXT,
    instance TEXT,
    jobs     TEXT    NOT NULL,
    ok       INTEGER NOT NULL,
    result   TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_master ON audit_log (master, id);
