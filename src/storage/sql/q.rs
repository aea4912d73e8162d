//! Statements both dialects share.

/// Up to `VALUES`: the rows follow.
pub const INSERT_AUDITS: &str = "INSERT INTO audit_log (master, at, actor, via, command, \
    workflow, instance, jobs, ok, result) ";
pub const AUDIT_PAGE: &str = "SELECT id, at, actor, via, command, workflow, instance, jobs, \
    ok, result FROM audit_log WHERE master = ? AND id < ? ORDER BY id DESC LIMIT ?";
pub const READ_ACTIVE: &str = "SELECT name, version, owner, expiration_time, priority, data \
     FROM active_tokens WHERE master = ? AND name >= ? AND name < ? ORDER BY name";
pub const READ_ARCHIVED: &str = "SELECT name, version, owner, expiration_time, priority, \
     data FROM archived_tokens WHERE master = ? AND name >= ? AND name < ? ORDER BY name, version";
pub const NAMES_ACTIVE: &str = "SELECT name FROM active_tokens WHERE master = ? AND name >= ? \
     AND name < ? ORDER BY name";
pub const NAMES_ARCHIVED: &str = "SELECT DISTINCT name FROM archived_tokens WHERE master = ? \
     AND name >= ? AND name < ? ORDER BY name";
pub const COUNT_ACTIVE: &str = "SELECT COUNT(*) FROM active_tokens WHERE master = ?";
pub const COUNT_ARCHIVED: &str = "SELECT COUNT(*) FROM archived_tokens WHERE master = ?";
pub const MASTER: &str = "SELECT version_floor, created_at FROM masters WHERE master = ?";
/// A takeover's mark on the `masters` row, in the transaction that takes the lease.
pub const MASTER_EPOCH: &str = "UPDATE masters SET epoch = ? WHERE master = ?";
/// The names archived longest ago (the age index), for retention.
pub const OLDEST_ARCHIVED: &str = "SELECT name FROM archived_tokens WHERE master = ? \
     AND archived_at < ? ORDER BY archived_at LIMIT ?";
/// When an instance was last archived (its key range).
pub const LAST_ARCHIVED: &str = "SELECT MAX(archived_at) FROM archived_tokens WHERE master = ? \
     AND name >= ? AND name < ?";
pub const DELETE_ARCHIVED: &str =
    "DELETE FROM archived_tokens WHERE master = ? AND name >= ? AND name < ?";
/// The distinct workflows with summaries, by skipping through the index (a recursive
/// query: one index seek per workflow instead of a scan of every summary).
pub const SUMMARY_WORKFLOWS: &str = "WITH RECURSIVE w(name) AS ( \
     SELECT MIN(workflow) FROM instance_summaries WHERE master = ? \
     UNION ALL SELECT (SELECT MIN(workflow) FROM instance_summaries \
     WHERE master = ? AND workflow > w.name) FROM w WHERE w.name IS NOT NULL) \
     SELECT name FROM w WHERE name IS NOT NULL";
pub const LATEST_SUMMARY: &str = "SELECT prefix, workflow, instance, status, start_time, \
     end_time, sort_time, data FROM instance_summaries WHERE master = ? AND workflow = ? \
     ORDER BY sort_time DESC, instance DESC LIMIT ?";
pub const SUMMARY_PAGE: &str = "SELECT prefix, workflow, instance, status, start_time, \
     end_time, sort_time, data FROM instance_summaries WHERE master = ? AND workflow = ? \
     ORDER BY instance DESC LIMIT ? OFFSET ?";
pub const SUMMARY_COUNT: &str =
    "SELECT COUNT(*) FROM instance_summaries WHERE master = ? AND workflow = ?";
pub const ARCHIVE_QUEUE: &str =
    "SELECT seq, prefix FROM archive_queue WHERE master = ? ORDER BY seq LIMIT ?";
pub const LOG_EXTENT: &str = "SELECT MAX(start_byte + raw_len), MAX(truncated_at), MAX(host) \
     FROM job_logs WHERE master = ? AND name = ? AND execution = ? AND kind = ?";
pub const LOG_CHUNKS: &str = "SELECT start_byte, raw_len, data, host, truncated_at, created_at \
     FROM job_logs WHERE master = ? AND name = ? AND execution = ? AND kind = ? \
     AND start_byte + raw_len > ? ORDER BY start_byte LIMIT ?";
pub const DELETE_LOGS_UNDER: &str =
    "DELETE FROM job_logs WHERE master = ? AND name >= ? AND name < ?";
pub const DROP_QUEUE: &str = "DELETE FROM archive_queue WHERE master = ? AND seq <= ?";
pub const DELETE_SUMMARY: &str = "DELETE FROM instance_summaries WHERE master = ? AND prefix = ?";
pub const LEASE_EPOCH: &str = "SELECT epoch FROM master_lease WHERE master = ?";
/// Up to `VALUES`: the rows follow.
pub const INSERT_REQUESTS: &str =
    "INSERT INTO request_outcomes (master, request_key, body_hash, answer, created_at) ";
pub const REQUESTS_SINCE: &str = "SELECT request_key, body_hash, answer, created_at FROM \
     request_outcomes WHERE master = ? AND created_at >= ? ORDER BY created_at";
pub const RELEASE_LEASE: &str =
    "UPDATE master_lease SET expires_ms = 0 WHERE master = ? AND epoch = ?";
pub const FORGET_STANDBY: &str = "DELETE FROM master_standbys WHERE master = ? AND address = ?";
pub const DELETE_SUMMARIES_UNDER: &str =
    "DELETE FROM instance_summaries WHERE master = ? AND prefix >= ? AND prefix < ?";
