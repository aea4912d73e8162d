-- Job logs as the workers send them to the master: each execution's stdout, stderr and pinlog
-- in chunks (deflate-compressed), so every UI can show a log wherever the job ran. `name` is
-- `/workflow/<wf>/<instance>/<job>`: an instance's logs are one range of the key.
CREATE TABLE IF NOT EXISTS job_logs (
    master       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    execution    INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    start_byte   INTEGER NOT NULL,
    raw_len      INTEGER NOT NULL,
    data         BLOB    NOT NULL,
    host         TEXT    NOT NULL,
    truncated_at INTEGER,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (master, name, execution, kind, start_byte)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_logs_age ON job_logs (master, created_at);
