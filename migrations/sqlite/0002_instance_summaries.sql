-- Instance summaries for the UI, so its pages stay fast with long histories.
-- archive_queue: each commit that archives tokens records the distinct three-segment prefixes
-- of their names (`/workflow/W/I/`); the UI summarises those prefixes and deletes the rows it
-- consumed. A reader that is not running leaves one small row per archived instance.
CREATE TABLE IF NOT EXISTS archive_queue (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    master TEXT    NOT NULL,
    prefix TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS archive_queue_master ON archive_queue (master, seq);
-- One row per archived instance: its status and times (PINBALL_SPEC §8.3) and a JSON detail.
-- sort_time is the end time (the start time when it never ended): the latest-ended instance
-- of a workflow is the top of the (master, workflow, sort_time) index.
CREATE TABLE IF NOT EXISTS instance_summaries (
    master     TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    workflow   TEXT NOT NULL,
    instance   TEXT NOT NULL,
    status     TEXT NOT NULL,
    start_time REAL,
    end_time   REAL,
    sort_time  REAL NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (master, prefix)
);
CREATE INDEX IF NOT EXISTS instance_summaries_instances ON instance_summaries (master, workflow, instance);
CREATE INDEX IF NOT EXISTS instance_summaries_latest ON instance_summaries (master, workflow, sort_time);
-- Existing archives are summarised on the UI's first pass.
INSERT INTO archive_queue (master, prefix)
    SELECT DISTINCT master, substr(name, 1, 10 + instr(substr(name, 11), '/')
        + instr(substr(name, 11 + instr(substr(name, 11), '/')), '/'))
    FROM archived_tokens WHERE name LIKE '/workflow/%/%/%';
