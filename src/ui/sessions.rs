//! Where the UI keeps its sessions: in this process's memory, bounded. tower-sessions'
//! `MemoryStore` filters expired sessions when it loads one but never removes them, and keeps
//! as many as are made; this store removes expired sessions every minute ([`purge_every`]) and,
//! when [`MAX_SESSIONS`] are live, forgets the one closest to expiring to make room. Used by
//! `auth::sessions`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

/// Sessions kept at once (a signed-in user holds one per browser).
pub const MAX_SESSIONS: usize = 10_000;

#[derive(Clone, Debug, Default)]
pub struct BoundedStore {
    records: Arc<Mutex<HashMap<Id, Record>>>,
}

impl BoundedStore {
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<Id, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes every expired session; says how many.
    pub fn purge(&self) -> usize {
        let now = OffsetDateTime::now_utc();
        let mut records = self.records();
        let before = records.len();
        records.retain(|_, r| r.expiry_date > now);
        before - records.len()
    }

    /// Sessions held now (expired ones included until the next purge).
    pub fn len(&self) -> usize {
        self.records().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Purges every `period` for as long as the store is in use (it ends with the UI).
    pub fn purge_every(&self, period: Duration) {
        let weak = Arc::downgrade(&self.records);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(records) = weak.upgrade() else {
                    return;
                };
                let purged = BoundedStore { records }.purge();
                if purged > 0 {
                    tracing::info!(purged, "ui removed expired sessions");
                }
            }
        });
    }

    fn insert(&self, record: &Record) {
        let mut records = self.records();
        if records.len() >= MAX_SESSIONS && !records.contains_key(&record.id) {
            let now = OffsetDateTime::now_utc();
            records.retain(|_, r| r.expiry_date > now);
            if records.len() >= MAX_SESSIONS
                && let Some(oldest) = records
                    .iter()
                    .min_by_key(|(_, r)| r.expiry_date)
                    .map(|(id, _)| *id)
            {
                records.remove(&oldest);
                tracing::warn!(
                    max = MAX_SESSIONS,
                    "ui holds its most sessions: the one closest to expiring was ended"
                );
            }
        }
        records.insert(record.id, record.clone());
    }
}

#[async_trait]
impl SessionStore for BoundedStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        while self.records().contains_key(&record.id) {
            record.id = Id::default();
        }
        self.insert(record);
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.insert(record);
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = OffsetDateTime::now_utc();
        Ok(self
            .records()
            .get(id)
            .filter(|r| r.expiry_date > now)
            .cloned())
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.records().remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_sessions::cookie::time::Duration as Span;

    fn record(expires_in: Span) -> Record {
        Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc() + expires_in,
        }
    }

    #[tokio::test]
    async fn expired_sessions_are_purged_and_live_ones_kept() {
        let store = BoundedStore::default();
        let mut old = record(Span::seconds(-1));
        let mut live = record(Span::minutes(5));
        store.create(&mut old).await.unwrap();
        store.create(&mut live).await.unwrap();
        assert_eq!(store.load(&old.id).await.unwrap(), None);
        assert_eq!(store.purge(), 1);
        assert_eq!(store.len(), 1);
        assert!(store.load(&live.id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn at_the_bound_the_session_closest_to_expiring_makes_room() {
        let store = BoundedStore::default();
        let mut soonest = record(Span::minutes(1));
        store.create(&mut soonest).await.unwrap();
        for _ in 1..MAX_SESSIONS {
            store.create(&mut record(Span::minutes(10))).await.unwrap();
        }
        let mut newest = record(Span::minutes(10));
        store.create(&mut newest).await.unwrap();
        assert_eq!(store.len(), MAX_SESSIONS);
        assert_eq!(store.load(&soonest.id).await.unwrap(), None);
        assert!(store.load(&newest.id).await.unwrap().is_some());
    }
}
