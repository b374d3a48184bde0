//! A cache of the roles that apply to `(organization, user, workspace)`,
//! so CheckPermission answers from memory. It never serves an answer older
//! than a committed change:
//! - every write that can change a decision holds a [`WriteGuard`] from
//!   before its transaction begins until after it commits; while any guard
//!   of an organization is held, its checks bypass the cache;
//! - each guard bumps the organization's version when taken and when
//!   dropped, so entries loaded before or during the write are never used
//!   after it.
//!
//! Only enabled when this process owns the database (embedded SQLite):
//! with several replicas on PostgreSQL another process may commit changes
//! this one cannot see, so every check reads the database.

use super::model::Role;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

/// Entries kept at most; past this the cache starts over.
const MAX_ENTRIES: usize = 100_000;

/// `(organization, user, workspace)`.
pub type Key = (String, String, Option<String>);

#[derive(Debug, Default)]
struct OrgState {
    version: u64,
    writers: u32,
}

#[derive(Debug, Default)]
struct Inner {
    orgs: HashMap<String, OrgState>,
    entries: HashMap<Key, (u64, Arc<Vec<Role>>)>,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// The applicable roles, current.
    Hit(Arc<Vec<Role>>),
    /// Not cached; when `Some`, insert what you load under this version.
    Miss(Option<u64>),
}

/// The cache; see the module docs.
#[derive(Debug, Default)]
pub struct AclCache {
    enabled: bool,
    inner: Mutex<Inner>,
}

impl AclCache {
    /// A cache that is used only when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a write to `organization_id` in progress until the guard drops.
    pub fn writing(self: &Arc<Self>, organization_id: &str) -> WriteGuard {
        if self.enabled {
            let mut inner = self.lock();
            let org = inner.orgs.entry(organization_id.to_owned()).or_default();
            org.version += 1;
            org.writers += 1;
        }
        WriteGuard {
            cache: self.clone(),
            organization_id: organization_id.to_owned(),
        }
    }

    /// Looks `key` up.
    pub fn lookup(&self, key: &Key) -> Lookup {
        if !self.enabled {
            return Lookup::Miss(None);
        }
        let inner = self.lock();
        let (version, writers) = inner
            .orgs
            .get(&key.0)
            .map_or((0, 0), |o| (o.version, o.writers));
        if writers > 0 {
            return Lookup::Miss(None);
        }
        match inner.entries.get(key) {
            Some((v, roles)) if *v == version => Lookup::Hit(roles.clone()),
            _ => Lookup::Miss(Some(version)),
        }
    }

    /// Stores `roles` for `key` if nothing was written since `version`.
    pub fn insert(&self, key: Key, version: u64, roles: Arc<Vec<Role>>) {
        let mut inner = self.lock();
        let current = inner
            .orgs
            .get(&key.0)
            .map_or((0, 0), |o| (o.version, o.writers));
        if current != (version, 0) {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(key, (version, roles));
    }
}

/// Held across a write transaction; see [`AclCache::writing`].
#[derive(Debug)]
pub struct WriteGuard {
    cache: Arc<AclCache>,
    organization_id: String,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        if !self.cache.enabled {
            return;
        }
        let mut inner = self.cache.lock();
        if let Some(org) = inner.orgs.get_mut(&self.organization_id) {
            org.version += 1;
            org.writers = org.writers.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        ("o".into(), "u".into(), None)
    }

    #[test]
    fn entries_die_with_every_write() {
        let cache = Arc::new(AclCache::new(true));
        let Lookup::Miss(Some(v)) = cache.lookup(&key()) else {
            panic!("empty cache misses")
        };
        cache.insert(key(), v, Arc::new(Vec::new()));
        assert!(matches!(cache.lookup(&key()), Lookup::Hit(_)));
        let guard = cache.writing("o");
        assert!(
            matches!(cache.lookup(&key()), Lookup::Miss(None)),
            "bypass while writing"
        );
        drop(guard);
        assert!(matches!(cache.lookup(&key()), Lookup::Miss(Some(_))));
    }

    #[test]
    fn a_load_that_overlaps_a_write_is_not_cached() {
        let cache = Arc::new(AclCache::new(true));
        let Lookup::Miss(Some(v)) = cache.lookup(&key()) else {
            panic!("empty cache misses")
        };
        drop(cache.writing("o"));
        cache.insert(key(), v, Arc::new(Vec::new()));
        assert!(matches!(cache.lookup(&key()), Lookup::Miss(Some(_))));
    }

    #[test]
    fn disabled_cache_never_hits() {
        let cache = Arc::new(AclCache::new(false));
        cache.insert(key(), 0, Arc::new(Vec::new()));
        assert!(matches!(cache.lookup(&key()), Lookup::Miss(None)));
    }
}
