-- Names are ASCII compared byte by byte (COLLATE "C"): case-sensitive and byte-ordered whatever
-- the database's collation, so a prefix is a range of the primary key. Every integer is BIGINT
-- and every real DOUBLE PRECISION: one type per Rust type, as PostgreSQL checks them strictly.
CREATE TABLE IF NOT EXISTS active_tokens (
    master          VARCHAR(64)  COLLATE "C" NOT NULL,
    name            VARCHAR(512) COLLATE "C" NOT NULL,
    version         BIGINT       NOT NULL,
    owner           VARCHAR(255) COLLATE "C" NULL,
    expiration_time BIGINT       NULL,
    priority        DOUBLE PRECISION NOT NULL DEFAULT 0,
    data            TEXT         NULL,
    PRIMARY KEY (master, name)
);
CREATE TABLE IF NOT EXISTS archived_tokens (
    master          VARCHAR(64)  COLLATE "C" NOT NULL,
    name            VARCHAR(512) COLLATE "C" NOT NULL,
    version         BIGINT       NOT NULL,
    owner           VARCHAR(255) COLLATE "C" NULL,
    expiration_time BIGINT       NULL,
    priority        DOUBLE PRECISION NOT NULL DEFAULT 0,
    data            TEXT         NULL,
    archived_at     BIGINT       NOT NULL,
    PRIMARY KEY (master, name, version)
);
CREATE TABLE IF NOT EXISTS masters (
    master        VARCHAR(64) COLLATE "C" NOT NULL PRIMARY KEY,
    version_floor BIGINT      NOT NULL,
    created_at    VARCHAR(64) NOT NULL
);
