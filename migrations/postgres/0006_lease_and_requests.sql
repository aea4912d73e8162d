-- One master per master name (issue 23): the row says which process serves it, until when (by
-- the database's clock, in milliseconds), and under which epoch. Every commit of a master reads
-- the row with FOR UPDATE in its own transaction and fails unless the epoch is the one that
-- master took, so a master that lost the row can never commit again.
CREATE TABLE IF NOT EXISTS master_lease (
    master     VARCHAR(64)  COLLATE "C" NOT NULL PRIMARY KEY,
    epoch      BIGINT       NOT NULL,
    holder     VARCHAR(512) NOT NULL,
    address    VARCHAR(255) NOT NULL,
    since_ms   BIGINT       NOT NULL,
    expires_ms BIGINT       NOT NULL
);
-- The outcome of each recent write a client sent with an Idempotency-Key, written in the commit
-- of the write itself: a replay of the same request (its answer was lost) gets this answer.
CREATE TABLE IF NOT EXISTS request_outcomes (
    master      VARCHAR(64)  COLLATE "C" NOT NULL,
    request_key VARCHAR(255) COLLATE "C" NOT NULL,
    body_hash   VARCHAR(64)  COLLATE "C" NOT NULL,
    answer      TEXT         NOT NULL,
    created_at  BIGINT       NOT NULL,
    PRIMARY KEY (master, request_key)
);
CREATE INDEX IF NOT EXISTS request_outcomes_age ON request_outcomes (master, created_at);
