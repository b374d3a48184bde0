//! A cache of the hot reads — the compiled permissions of the roles that
//! apply to `(organization, user, workspace)` for CheckPermission, single
//! roles for GetRole, and the roles of a user for ListUserRoles — so they
//! are answered from memory. It never serves an answer older than a
//! committed change:
//! - every write that can change a decision holds a [`WriteGuard`] from
//!   before its transaction begins until after it commits; while any guard
//!   of an organization is held, its checks bypass the cache;
//! - each guard bumps the organization's version when taken and when
//!   dropped, so entries loaded before or during the write are never used
//!   after it.
//!
//! Replicas sharing a PostgreSQL database also commit changes this process
//! cannot see. There every such write transaction also bumps the
//! organization's version in the database, and a read first learns the
//! current one ([`super::fence`], from a query that started after the
//! read did): an entry serves it only if it was loaded under that version.
//! One SQLite process alone passes 0.

use super::{
    access::PermissionSet,
    model::{Role, UserRoles},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

/// Entries kept at most; past this, outdated entries are dropped (and, if
/// that is not enough, all of them).
const MAX_ENTRIES: usize = 50_000;

/// What is cached; the first field is always the organization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// The compiled permissions of the roles that apply to
    /// `(organization, user, workspace)`.
    Applicable(String, String, Option<String>),
    /// One role.
    Role(String, String),
    /// The organization roles of a user.
    UserRoles(String, String),
}

impl Key {
    /// The organization.
    pub fn organization(&self) -> &str {
        match self {
            Self::Applicable(o, ..) | Self::Role(o, _) | Self::UserRoles(o, _) => o,
        }
    }
}

/// A cached answer.
#[derive(Debug, Clone)]
pub enum Value {
    /// For [`Key::Applicable`].
    Permissions(Arc<PermissionSet>),
    /// For [`Key::Role`].
    Role(Arc<Role>),
    /// For [`Key::UserRoles`].
    UserRoles(Arc<UserRoles>),
}

#[derive(Debug, Default)]
struct OrgState {
    version: u64,
    writers: u32,
}

#[derive(Debug, Default)]
struct Inner {
    orgs: HashMap<String, OrgState>,
    /// The local version and the shared (database) version each entry
    /// was loaded under.
    entries: HashMap<Key, (u64, i64, Value)>,
}

impl Inner {
    /// Makes room: drops the entries a write has outdated, and everything
    /// if that frees less than a tenth.
    fn prune(&mut self) {
        let orgs = &self.orgs;
        self.entries.retain(|key, (version, _, _)| {
            orgs.get(key.organization())
                .is_none_or(|org| org.version == *version)
        });
        if self.entries.len() >= MAX_ENTRIES - MAX_ENTRIES / 10 {
            self.entries.clear();
        }
    }
}

/// A type that can be cached as a [`Value`].
pub trait Cached: Sized {
    /// Wraps it.
    fn wrap(value: Arc<Self>) -> Value;
    /// Unwraps it, if `value` holds this type.
    fn unwrap(value: Value) -> Option<Arc<Self>>;
}

macro_rules! cached_as {
    ($type:ty, $variant:ident) => {
        impl Cached for $type {
            fn wrap(value: Arc<Self>) -> Value {
                Value::$variant(value)
            }
            fn unwrap(value: Value) -> Option<Arc<Self>> {
                match value {
                    Value::$variant(inner) => Some(inner),
                    _ => None,
                }
            }
        }
    };
}

cached_as!(PermissionSet, Permissions);
cached_as!(Role, Role);
cached_as!(UserRoles, UserRoles);

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// The answer, current.
    Hit(Value),
    /// Not cached; when `Some`, insert what you load under this version.
    Miss(Option<u64>),
}

/// The cache; see the module docs.
#[derive(Debug, Default)]
pub struct ReadCache {
    inner: Mutex<Inner>,
}

impl ReadCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a write to `organization_id` in progress until the guard drops.
    pub fn writing(self: &Arc<Self>, organization_id: &str) -> WriteGuard {
        let mut inner = self.lock();
        let org = inner.orgs.entry(organization_id.to_owned()).or_default();
        org.version += 1;
        org.writers += 1;
        drop(inner);
        WriteGuard {
            cache: self.clone(),
            organization_id: organization_id.to_owned(),
        }
    }

    /// Looks `key` up; `shared` is its organization's current shared
    /// version.
    pub fn lookup(&self, key: &Key, shared: i64) -> Lookup {
        let inner = self.lock();
        let (version, writers) = inner
            .orgs
            .get(key.organization())
            .map_or((0, 0), |o| (o.version, o.writers));
        if writers > 0 {
            return Lookup::Miss(None);
        }
        match inner.entries.get(key) {
            Some((v, s, value)) if *v == version && *s == shared => Lookup::Hit(value.clone()),
            _ => Lookup::Miss(Some(version)),
        }
    }

    /// Stores `value`, loaded under the shared version `shared`, for `key`
    /// if nothing was written here since `version`.
    pub fn insert(&self, key: Key, version: u64, shared: i64, value: Value) {
        let mut inner = self.lock();
        let current = inner
            .orgs
            .get(key.organization())
            .map_or((0, 0), |o| (o.version, o.writers));
        if current != (version, 0) {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.prune();
        }
        inner.entries.insert(key, (version, shared, value));
    }
}

/// Held across a write transaction; see [`ReadCache::writing`].
#[derive(Debug)]
pub struct WriteGuard {
    cache: Arc<ReadCache>,
    organization_id: String,
}

impl WriteGuard {
    /// The organization written to.
    pub fn organization_id(&self) -> &str {
        &self.organization_id
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
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
        Key::Applicable("o".into(), "u".into(), None)
    }

    fn value() -> Value {
        Value::Permissions(Arc::default())
    }

    #[test]
    fn entries_die_with_every_write() {
        let cache = Arc::new(ReadCache::default());
        let Lookup::Miss(Some(v)) = cache.lookup(&key(), 0) else {
            panic!("empty cache misses")
        };
        cache.insert(key(), v, 0, value());
        assert!(matches!(cache.lookup(&key(), 0), Lookup::Hit(_)));
        let guard = cache.writing("o");
        assert!(
            matches!(cache.lookup(&key(), 0), Lookup::Miss(None)),
            "bypass while writing"
        );
        drop(guard);
        assert!(matches!(cache.lookup(&key(), 0), Lookup::Miss(Some(_))));
    }

    #[test]
    fn a_load_that_overlaps_a_write_is_not_cached() {
        let cache = Arc::new(ReadCache::default());
        let Lookup::Miss(Some(v)) = cache.lookup(&key(), 0) else {
            panic!("empty cache misses")
        };
        drop(cache.writing("o"));
        cache.insert(key(), v, 0, value());
        assert!(matches!(cache.lookup(&key(), 0), Lookup::Miss(Some(_))));
    }

    #[test]
    fn a_full_cache_drops_outdated_entries_first() {
        let cache = Arc::new(ReadCache::default());
        let role = |org: &str, i: usize| Key::Role(org.into(), i.to_string());
        for i in 0..MAX_ENTRIES / 2 {
            cache.insert(role("old", i), 0, 0, value());
        }
        drop(cache.writing("old"));
        for i in 0..MAX_ENTRIES / 2 + 1 {
            cache.insert(role("o", i), 0, 0, value());
        }
        assert!(matches!(cache.lookup(&role("o", 0), 0), Lookup::Hit(_)));
        assert_eq!(cache.lock().entries.len(), MAX_ENTRIES / 2 + 1);
    }

    #[test]
    fn an_entry_of_another_shared_version_misses() {
        let cache = Arc::new(ReadCache::default());
        cache.insert(key(), 0, 7, value());
        assert!(matches!(cache.lookup(&key(), 7), Lookup::Hit(_)));
        assert!(matches!(cache.lookup(&key(), 8), Lookup::Miss(Some(0))));
    }
}
