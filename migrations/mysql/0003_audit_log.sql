-- The audit log; see migrations/sqlite/0003 for what it holds.
CREATE TABLE IF NOT EXISTS audit_log (
    id       BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    master   VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    at       DOUBLE       NOT NULL,
    actor    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    via      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    command  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    workflow VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
    instance VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
    jobs     MEDIUMTEXT   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    ok       BOOLEAN      NOT NULL,
    result   TEXT         CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    KEY audit_log_master (master, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
