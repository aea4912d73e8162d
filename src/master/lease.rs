//! One master per database and master name: before it loads anything, a master takes the
//! `master_lease` row of its name (a greater epoch than every one before), renews it every
//! fifth of `master_lease_sec` on a connection of its own, and every commit checks the epoch
//! in its own transaction (`storage::Storage::commit`). A second master finds the row held and
//! stops with the first one's address; a master whose lease another took (it hung longer than
//! its lease) can never commit again, and stops too. A lease whose holder is known to be dead
//! (same host and boot, its process gone) is taken at once, so a master restarted after a
//! crash does not wait out its old lease.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::storage::{LeaseClaim, LeaseHolder, LeaseOutcome, StorageError, Take, TokenStore};

/// What a master says about the lease it wants.
#[derive(Debug, Clone)]
pub struct HoldSpec {
    /// Where this master answers (`HOST:PORT`), shown to a master that finds it taken.
    pub address: String,
    /// `master_lease_sec`.
    pub lease: Duration,
    /// The database is a file this process holds an exclusive lock on (SQLite): the row is
    /// taken whatever it says, and needs no renewal.
    pub file_locked: bool,
}

/// This process, as the lease row records it: `HOST pid PID boot BOOT_ID`.
pub fn holder_identity() -> String {
    format!(
        "{} pid {} boot {}",
        crate::config::host_name(),
        std::process::id(),
        boot_id()
    )
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_owned())
        .unwrap_or_default()
}

/// Whether `holder` names a process of this host, since its last boot, that is no longer a
/// running Pinball: its lease can be taken without waiting for it to expire.
pub(super) fn holder_is_dead(holder: &str) -> bool {
    let mut words = holder.split(' ');
    let (Some(host), Some("pid"), Some(pid), Some("boot"), Some(boot)) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if host != crate::config::host_name() || boot.is_empty() || boot != boot_id() {
        return false;
    }
    if pid == std::process::id() {
        return false;
    }
    // `PID (COMM) STATE ...`: a zombie (Z) or dead (X) process holds nothing.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat.rsplit_once(") ") {
            Some((head, rest)) => {
                let comm = head.split_once(" (").map_or("", |(_, c)| c);
                !comm.starts_with("pinball") || rest.starts_with('Z') || rest.starts_with('X')
            }
            None => false,
        },
        Err(_) => true,
    }
}

/// Why a master may not serve: another holds the lease (or the SQLite file's lock).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error(
        "master {master} is already served by {} (since {}; {}); stop that master first: two masters on one database would lose acknowledged writes. Its lease ends {} s after it stops renewing it",
        if held.address.is_empty() { "another process" } else { &held.address },
        crate::clock::utc(held.since_ms / 1000),
        held.holder,
        (held.expires_in_ms.max(0) as u64).div_ceil(1000)
    )]
    Leased { master: String, held: LeaseHolder },
}

/// Why master `master` may not serve: `held` holds its lease.
pub fn refusal(master: &str, held: &LeaseHolder) -> Refused {
    Refused::Leased {
        master: master.to_owned(),
        held: held.clone(),
    }
}

/// Takes the lease of `master`: its epoch, or why another master keeps it (`Ok(Err(..))`).
pub async fn take(
    storage: &dyn TokenStore,
    master: &str,
    spec: &HoldSpec,
) -> Result<Result<i64, Refused>, StorageError> {
    let holder = holder_identity();
    let mut claim = LeaseClaim {
        holder: &holder,
        address: &spec.address,
        lease_ms: spec.lease.as_millis() as i64,
        take: if spec.file_locked {
            Take::Always
        } else {
            Take::IfExpired
        },
    };
    loop {
        match storage.take_lease(master, &claim).await? {
            LeaseOutcome::Taken { epoch } => {
                tracing::info!(master, epoch, address = %spec.address, "took the master's lease: this process serves it");
                return Ok(Ok(epoch));
            }
            LeaseOutcome::Held(held)
                if claim.take == Take::IfExpired && holder_is_dead(&held.holder) =>
            {
                tracing::info!(master, holder = %held.holder, "the master's lease is held by a process of this host that is gone; taking it over");
                claim.take = Take::OrReplace(held.epoch);
            }
            LeaseOutcome::Held(held) => return Ok(Err(refusal(master, &held))),
        }
    }
}

/// Renews the lease every fifth of its length until the master is gone, or finds it taken by
/// another master: then `deposed` is told why. A lease left unrenewed past 0.7 of its length
/// (the database does not answer, or answers too slowly) makes the master serve nothing
/// (`lapsed`) until a renewal lands again: by then another master may have taken it over, and
/// this one's memory may be behind the database.
pub(super) fn spawn_renewal(
    storage: std::sync::Arc<dyn TokenStore>,
    master: String,
    epoch: i64,
    lease: Duration,
    alive: Weak<super::service::Shared>,
) {
    let every = (lease / 5).max(Duration::from_millis(200));
    let born = Instant::now();
    // When the last renewal was sent that landed, in milliseconds since `born`.
    let renewed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    spawn_lapse_watch(
        master.clone(),
        epoch,
        lease,
        born,
        renewed.clone(),
        alive.clone(),
    );
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(every).await;
            let Some(shared) = alive.upgrade() else {
                return;
            };
            let asked = born.elapsed();
            let given_up = shared.renewals.lock().await;
            if *given_up {
                return;
            }
            let renewal = storage.renew_lease(&master, epoch, lease.as_millis() as i64);
            let answer = match tokio::time::timeout(every, renewal).await {
                Ok(answer) => answer.map_err(|e| e.to_string()),
                Err(_) => Err("the database did not answer in time".to_owned()),
            };
            drop(given_up);
            match answer {
                Ok(true) => {
                    // The database extended it from a moment after `asked`.
                    renewed.store(
                        asked.as_millis() as u64,
                        std::sync::atomic::Ordering::Release,
                    );
                    refresh_standbys(storage.as_ref(), &master, &shared, every).await;
                    if shared
                        .lapsed
                        .swap(false, std::sync::atomic::Ordering::AcqRel)
                    {
                        tracing::info!(
                            master,
                            epoch,
                            "the master's lease is renewed again: it serves again"
                        );
                    } else if failing {
                        tracing::info!(master, epoch, "the master's lease is renewed again");
                    }
                    failing = false;
                }
                Ok(false) => {
                    shared.depose(format!(
                        "another master took over master {master}: this one's lease (epoch {epoch}) is gone"
                    ));
                    return;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(master, epoch, error = %e, "cannot renew the master's lease; it serves on until 0.7 of the lease has passed");
                    }
                    failing = true;
                }
            }
        }
    });
}

impl super::service::Shared {
    /// The standbys' addresses, as the last renewal read them.
    pub(super) fn known_standbys(&self) -> Vec<String> {
        self.standbys.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Reads the standbys' addresses into `shared` (for its health), waiting at most `within`.
async fn refresh_standbys(
    storage: &dyn TokenStore,
    master: &str,
    shared: &super::service::Shared,
    within: Duration,
) {
    let read = storage.standbys(master, super::standby::STANDBY_SEEN_MS);
    if let Ok(Ok(standbys)) = tokio::time::timeout(within, read).await
        && let Ok(mut known) = shared.standbys.lock()
    {
        *known = standbys;
    }
}

/// Marks the master `lapsed` once its lease has gone unrenewed past 0.7 of its length
/// (`renewed`: when the last renewal that landed was sent, in milliseconds since `born`),
/// looking fifty times a lease.
fn spawn_lapse_watch(
    master: String,
    epoch: i64,
    lease: Duration,
    born: Instant,
    renewed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    alive: Weak<super::service::Shared>,
) {
    use std::sync::atomic::Ordering;
    let deadline = lease.mul_f64(0.7);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval((lease / 50).max(Duration::from_millis(20)));
        loop {
            tick.tick().await;
            let Some(shared) = alive.upgrade() else {
                return;
            };
            let since = born
                .elapsed()
                .saturating_sub(Duration::from_millis(renewed.load(Ordering::Acquire)));
            if since > deadline && !shared.lapsed.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    master,
                    epoch,
                    unrenewed_ms = since.as_millis() as u64,
                    "this master stops serving: its lease went unrenewed past 0.7 of its length, and another master may take over"
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_of_this_host_is_dead_only_when_its_process_is_gone() {
        let me = holder_identity();
        assert!(!holder_is_dead(&me), "this process is alive");
        let host = crate::config::host_name();
        let boot = boot_id();
        // No process has pid 0 in /proc.
        assert!(holder_is_dead(&format!("{host} pid 4194304 boot {boot}")));
        assert!(!holder_is_dead(&format!(
            "other-host pid 4194304 boot {boot}"
        )));
        assert!(!holder_is_dead(&format!("{host} pid 4194304 boot other")));
        assert!(!holder_is_dead("garbage"));
    }
}
