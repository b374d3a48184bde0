//! A cache of the hot reads — the compiled permissions of the roles that
//! apply to `(organization, user, workspace)` for CheckPermission, single
//! roles for GetRole, and the roles of a user for ListUserRoles — so they
//! are answered from memory. It never serves an answer older than a
//! committed change:
//! - every write that can change a decision holds a [`WriteGuard`] from
//!   before its transaction begins until after it commits; while any guard
//!   of an organization is held, its checks bypass the cache;
//! - each guard bumps the organization's version when taken and when
//!   dropped, which drops the organization's entries and keeps any loaded
//!   before or during the write from being stored after it.
//!
//! Entries are kept per organization, within a budget of estimated bytes:
//! past it, whole organizations' entries go.
//!
//! Replicas sharing a PostgreSQL database also commit changes this process
//! cannot see. There every such write transaction also bumps the
//! organization's version in the database, and a read first learns the
//! current one ([`super::fence`], from a query that started after the
//! read did): an entry serves it only if it was loaded under that version.
//! A replica alone on the database passes the tag of its solo stint
//! instead, without asking ([`super::solo`]); one SQLite process passes 0.

use super::{
    access::PermissionSet,
    model::{Role, UserRoles},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

/// What an entry costs beyond its value: the key, the map's slot, the
/// version.
const ENTRY_OVERHEAD: usize = 160;

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

/// One organization's entries, with the shared (database) version each was
/// loaded under and its approximate size.
type Entries = HashMap<Key, (i64, usize, Value)>;

#[derive(Debug, Default)]
struct OrgState {
    version: u64,
    writers: u32,
    /// Entries loaded under `version`.
    entries: Entries,
    /// The sizes of `entries`, summed.
    bytes: usize,
}

#[derive(Debug)]
struct Inner {
    orgs: HashMap<String, OrgState>,
    /// The sizes of all entries, summed.
    bytes: usize,
    /// What they may sum to.
    budget: usize,
}

impl Inner {
    /// A write to `organization_id` began or ended: bumps its version and
    /// takes out its entries, now outdated. Whatever is taken out is
    /// dropped after the lock is released: freeing thousands of values
    /// would hold up every read.
    fn outdate(&mut self, organization_id: &str) -> Entries {
        let Some(org) = self.orgs.get_mut(organization_id) else {
            return Entries::new();
        };
        org.version += 1;
        self.bytes -= std::mem::take(&mut org.bytes);
        std::mem::take(&mut org.entries)
    }

    /// Stores `value` of about `size` bytes for `key` if nothing was written
    /// to its organization since `version`; returns the entries taken out
    /// to make room.
    fn store(
        &mut self,
        key: Key,
        version: u64,
        shared: i64,
        size: usize,
        value: Value,
    ) -> Vec<Entries> {
        let size = size + ENTRY_OVERHEAD;
        let current = self
            .orgs
            .get(key.organization())
            .map_or((0, 0), |o| (o.version, o.writers));
        if current != (version, 0) || size > self.budget {
            return Vec::new();
        }
        let evicted = self.make_room(size);
        let org = self.orgs.entry(key.organization().to_owned()).or_default();
        let replaced = org
            .entries
            .insert(key, (shared, size, value))
            .map_or(0, |(_, old, _)| old);
        org.bytes = org.bytes + size - replaced;
        self.bytes = self.bytes + size - replaced;
        evicted
    }

    /// Takes out whole organizations' entries until `more` bytes fit the
    /// budget.
    fn make_room(&mut self, more: usize) -> Vec<Entries> {
        let Self {
            orgs,
            bytes,
            budget,
        } = self;
        let mut evicted = Vec::new();
        for org in orgs.values_mut() {
            if *bytes + more <= *budget {
                break;
            }
            *bytes -= std::mem::take(&mut org.bytes);
            evicted.push(std::mem::take(&mut org.entries));
        }
        evicted
    }
}

/// A type that can be cached as a [`Value`].
pub trait Cached: Sized {
    /// Wraps it.
    fn wrap(value: Arc<Self>) -> Value;
    /// Unwraps it, if `value` holds this type.
    fn unwrap(value: Value) -> Option<Arc<Self>>;
    /// About how many bytes it holds, with its encoding once made.
    fn size(&self) -> usize;
    /// Passes the roles it holds through `intern`, before it is cached,
    /// so that entries share equal roles instead of each holding a copy.
    fn share(&mut self, _intern: &mut dyn FnMut(Arc<Role>) -> Arc<Role>) {}
}

macro_rules! cached_as {
    ($type:ty, $variant:ident $(, $share:ident)?) => {
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
            fn size(&self) -> usize {
                self.approximate_size()
            }
            $(fn share(&mut self, intern: &mut dyn FnMut(Arc<Role>) -> Arc<Role>) {
                self.$share(intern)
            })?
        }
    };
}

cached_as!(PermissionSet, Permissions);
cached_as!(Role, Role);
cached_as!(UserRoles, UserRoles, share_roles);

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// The answer, current.
    Hit(Value),
    /// Not cached; when `Some`, insert what you load under this version.
    Miss(Option<u64>),
}

/// The cache; see the module docs.
#[derive(Debug)]
pub struct ReadCache {
    inner: Mutex<Inner>,
}

impl ReadCache {
    /// A cache of at most about `budget` bytes of entries.
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                orgs: HashMap::new(),
                bytes: 0,
                budget,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a write to `organization_id` in progress until the guard drops.
    pub fn writing(self: &Arc<Self>, organization_id: &str) -> WriteGuard {
        let mut inner = self.lock();
        inner
            .orgs
            .entry(organization_id.to_owned())
            .or_default()
            .writers += 1;
        let outdated = inner.outdate(organization_id);
        drop(inner);
        drop(outdated);
        WriteGuard {
            cache: self.clone(),
            organization_id: organization_id.to_owned(),
        }
    }

    /// Looks `key` up; `shared` is its organization's current shared
    /// version.
    pub fn lookup(&self, key: &Key, shared: i64) -> Lookup {
        let inner = self.lock();
        let Some(org) = inner.orgs.get(key.organization()) else {
            return Lookup::Miss(Some(0));
        };
        if org.writers > 0 {
            return Lookup::Miss(None);
        }
        match org.entries.get(key) {
            Some((s, _, value)) if *s == shared => Lookup::Hit(value.clone()),
            _ => Lookup::Miss(Some(org.version)),
        }
    }

    /// Stores `value` of about `size` bytes, loaded under the shared
    /// version `shared`, for `key` if nothing was written here since
    /// `version`.
    pub fn insert(&self, key: Key, version: u64, shared: i64, size: usize, value: Value) {
        let mut inner = self.lock();
        let evicted = inner.store(key, version, shared, size, value);
        drop(inner);
        drop(evicted);
    }

    /// The cached role equal to `role` (the same role and revision, loaded
    /// under the same versions), or `role` itself, stored if nothing was
    /// written to its organization since `version`.
    pub fn intern_role(&self, version: u64, shared: i64, role: Arc<Role>) -> Arc<Role> {
        let key = Key::Role(role.organization_id.clone(), role.role_id.clone());
        let mut inner = self.lock();
        if let Some(org) = inner.orgs.get(key.organization())
            && (org.version, org.writers) == (version, 0)
            && let Some((s, _, Value::Role(cached))) = org.entries.get(&key)
            && *s == shared
            && cached.revision == role.revision
        {
            return Arc::clone(cached);
        }
        let size = role.approximate_size();
        let evicted = inner.store(key, version, shared, size, Value::Role(Arc::clone(&role)));
        drop(inner);
        drop(evicted);
        role
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
            org.writers = org.writers.saturating_sub(1);
        }
        let outdated = inner.outdate(&self.organization_id);
        drop(inner);
        drop(outdated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: usize = 1 << 20;

    fn key() -> Key {
        Key::Applicable("o".into(), "u".into(), None)
    }

    fn value() -> Value {
        Value::Permissions(Arc::default())
    }

    fn role(org: &str) -> Key {
        Key::Role(org.into(), "r".into())
    }

    fn hit(cache: &ReadCache, key: &Key) -> bool {
        matches!(cache.lookup(key, 0), Lookup::Hit(_))
    }

    fn bytes(cache: &ReadCache) -> usize {
        cache.lock().bytes
    }

    #[test]
    fn entries_die_with_every_write() {
        let cache = Arc::new(ReadCache::new(BUDGET));
        let Lookup::Miss(Some(v)) = cache.lookup(&key(), 0) else {
            panic!("empty cache misses")
        };
        cache.insert(key(), v, 0, 10, value());
        assert!(hit(&cache, &key()));
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
        let cache = Arc::new(ReadCache::new(BUDGET));
        let Lookup::Miss(Some(v)) = cache.lookup(&key(), 0) else {
            panic!("empty cache misses")
        };
        drop(cache.writing("o"));
        cache.insert(key(), v, 0, 10, value());
        assert!(matches!(cache.lookup(&key(), 0), Lookup::Miss(Some(_))));
    }

    #[test]
    fn a_write_frees_its_organizations_entries_at_once() {
        let cache = Arc::new(ReadCache::new(BUDGET));
        cache.insert(role("a"), 0, 0, 1000, value());
        cache.insert(role("b"), 0, 0, 1000, value());
        cache.insert(role("b"), 0, 0, 1000, value());
        assert_eq!(bytes(&cache), 2 * (1000 + ENTRY_OVERHEAD));
        drop(cache.writing("a"));
        assert_eq!(bytes(&cache), 1000 + ENTRY_OVERHEAD);
        assert!(!hit(&cache, &role("a")));
        assert!(hit(&cache, &role("b")));
    }

    #[test]
    fn past_the_budget_whole_organizations_go() {
        let cache = Arc::new(ReadCache::new(BUDGET));
        let half = BUDGET / 2;
        cache.insert(role("a"), 0, 0, half, value());
        cache.insert(role("b"), 0, 0, half, value());
        assert!(bytes(&cache) <= BUDGET);
        assert!(!hit(&cache, &role("a")));
        assert!(hit(&cache, &role("b")), "the newest entry stays");
        cache.insert(role("c"), 0, 0, BUDGET, value());
        assert!(!hit(&cache, &role("c")), "too large to keep at all");
        assert!(hit(&cache, &role("b")));
    }

    fn sample_role(revision: i64) -> Arc<Role> {
        Arc::new(Role {
            organization_id: "o".into(),
            role_id: "r".into(),
            name: "Reader".into(),
            description: String::new(),
            scope: crate::domain::model::RoleScope::Organization,
            permissions: Vec::new(),
            revision,
            create_time: 0,
            update_time: 0,
            encoding: Default::default(),
        })
    }

    #[test]
    fn equal_roles_are_shared_between_entries() {
        let cache = Arc::new(ReadCache::new(BUDGET));
        let first = cache.intern_role(0, 0, sample_role(1));
        assert!(hit(&cache, &role("o")), "the first is cached as the role");
        let again = cache.intern_role(0, 0, sample_role(1));
        assert!(Arc::ptr_eq(&first, &again));
        let updated = cache.intern_role(0, 0, sample_role(2));
        assert!(!Arc::ptr_eq(&first, &updated));
        drop(cache.writing("o"));
        let stale = cache.intern_role(0, 0, sample_role(1));
        assert!(
            !hit(&cache, &role("o")),
            "loaded before the write: not cached"
        );
        assert!(!Arc::ptr_eq(&updated, &stale));
    }

    #[test]
    fn a_budget_of_nothing_caches_nothing() {
        let cache = Arc::new(ReadCache::new(0));
        cache.insert(key(), 0, 0, 0, value());
        assert!(!hit(&cache, &key()));
    }

    #[test]
    fn an_entry_of_another_shared_version_misses() {
        let cache = Arc::new(ReadCache::new(BUDGET));
        cache.insert(key(), 0, 7, 10, value());
        assert!(matches!(cache.lookup(&key(), 7), Lookup::Hit(_)));
        assert!(matches!(cache.lookup(&key(), 8), Lookup::Miss(Some(0))));
    }
}
