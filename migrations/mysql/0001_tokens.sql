-- Names are ASCII with a binary collation: case-sensitive, byte-ordered, so a prefix is a
-- range of the primary key. Data is LONGTEXT: job histories outgrow TEXT's 64 KiB.
CREATE TABLE IF NOT EXISTS active_tokens (
    master          VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name            VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    version         BIGINT       NOT NULL,
    owner           VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    expiration_time BIGINT       NULL,
    priority        DOUBLE       NOT NULL DEFAULT 0,
    data            LONGTEXT     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    PRIMARY KEY (master, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS archived_tokens (
    master          VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name            VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    version         BIGINT       NOT NULL,
    owner           VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    expiration_time BIGINT       NULL,
    priority        DOUBLE       NOT NULL DEFAULT 0,
    data            LONGTEXT     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    archived_at     BIGINT       NOT NULL,
    PRIMARY KEY (master, name, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS masters (
    master        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    version_floor BIGINT      NOT NULL,
    created_at    VARCHAR(64) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
