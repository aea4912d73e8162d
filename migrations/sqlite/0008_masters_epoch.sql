-- The fence (issue 30): the epoch of the master's lease, also kept on its `masters` row. A takeover
-- sets it in the transaction that takes the lease, and every commit's last statement updates the
-- row only where it still carries the committing master's epoch: a master that lost its lease
-- changes no row there, and its transaction is rolled back. The row lock of that update is the
-- fence's lock: a takeover waits for a commit that holds it, and a commit after it finds the new
-- epoch. No extra statement, no extra lock per commit.
ALTER TABLE masters ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
