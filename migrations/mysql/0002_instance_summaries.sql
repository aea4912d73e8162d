-- Instance summaries for the UI; see migrations/sqlite/0002 for what each table is for.
CREATE TABLE IF NOT EXISTS archive_queue (
    seq    BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    master VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    prefix VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    KEY archive_queue_master (master, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS instance_summaries (
    master     VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    prefix     VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    workflow   VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    instance   VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    status     VARCHAR(32)  NOT NULL,
    start_time DOUBLE       NULL,
    end_time   DOUBLE       NULL,
    sort_time  DOUBLE       NOT NULL,
    data       LONGTEXT     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    PRIMARY KEY (master, prefix),
    KEY instance_summaries_instances (master, workflow, instance),
    KEY instance_summaries_latest (master, workflow, sort_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO archive_queue (master, prefix)
    SELECT DISTINCT master, SUBSTRING(name, 1, LOCATE('/', name, LOCATE('/', name, 11) + 1))
    FROM archived_tokens WHERE name LIKE '/workflow/%/%/%';
