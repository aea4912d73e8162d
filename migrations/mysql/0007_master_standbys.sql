-- Standby masters (issue 30): each standby notes itself here while it waits, so the leader's
-- health and the dashboard can list them; `seen_ms` is the database's clock at its last note.
CREATE TABLE IF NOT EXISTS master_standbys (
    master  VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    address VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    holder  VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    seen_ms BIGINT       NOT NULL,
    PRIMARY KEY (master, address)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
