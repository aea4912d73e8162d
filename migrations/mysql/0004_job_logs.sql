-- Job logs as the workers send them to the master: each execution's stdout, stderr and pinlog
-- in chunks (deflate-compressed), so every UI can show a log wherever the job ran. `name` is
-- `/workflow/<wf>/<instance>/<job>`: an instance's logs are one range of the key.
CREATE TABLE IF NOT EXISTS job_logs (
    master       VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name         VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    execution    BIGINT       NOT NULL,
    kind         VARCHAR(8)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    start_byte   BIGINT       NOT NULL,
    raw_len      BIGINT       NOT NULL,
    data         LONGBLOB     NOT NULL,
    host         VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    truncated_at BIGINT       NULL,
    created_at   BIGINT       NOT NULL,
    PRIMARY KEY (master, name, execution, kind, start_byte),
    KEY job_logs_age (master, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
