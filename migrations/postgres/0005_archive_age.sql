-- Retention (`retention_days`) finds the instances archived longest ago by this index.
CREATE INDEX IF NOT EXISTS archived_tokens_age ON archived_tokens (master, archived_at);
