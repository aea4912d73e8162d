-- Job logs as the workers send them to the master: each execution's stdout, stderr and pinlog
-- in chunks (deflate-compressed), so every UI can show a log wherever the job ran. `name` is
-- `/workflow/<wf>/<instance>/<job>`: an instance's logs are one range of the key.
CREATE TABLE IF NOT EXISTS job_logs (
    master       VARCHAR(64)  COLLATE "C" NOT NULL,
    name         VARCHAR(512) COLLATE "C" NOT NULL,
    execution    BIGINT       NOT NULL,
    kind         VARCHAR(8)   COLLATE "C" NOT NULL,
    start_byte   BIGINT       NOT NULL,
    raw_len      BIGINT       NOT NULL,
    data         BYTEA        NOT NULL,
    host         VARCHAR(255) NOT NULL,
    truncated_at BIGINT       NULL,
    created_at   BIGINT       NOT NULL,
    PRIMARY KEY (master, name, execution, kind, start_byte)
);
CREATE INDEX IF NOT EXISTS job_logs_age ON job_logs (master, created_at);
