-- Standby masters (issue 30): each standby notes itself here while it waits, so the leader's
-- health and the dashboard can list them; `seen_ms` is the database's clock at its last note.
CREATE TABLE IF NOT EXISTS master_standbys (
    master  VARCHAR(64)  COLLATE "C" NOT NULL,
    address VARCHAR(255) COLLATE "C" NOT NULL,
    holder  VARCHAR(512) NOT NULL,
    seen_ms BIGINT       NOT NULL,
    PRIMARY KEY (master, address)
);
