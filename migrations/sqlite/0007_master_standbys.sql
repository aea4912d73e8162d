-- Standby masters (issue 30): each standby notes itself here while it waits, so the leader's
-- health and the dashboard can list them; `seen_ms` is the database's clock at its last note.
CREATE TABLE IF NOT EXISTS master_standbys (
    master  TEXT    NOT NULL,
    address TEXT    NOT NULL,
    holder  TEXT    NOT NULL,
    seen_ms INTEGER NOT NULL,
    PRIMARY KEY (master, address)
);
