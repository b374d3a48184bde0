//! Business rules and transactions. Every public method validates its input,
//! checks existence, and changes the database in one transaction. Callers
//! (the gRPC layer, the operation workers) have already authorized the
//! request. No protobuf types here.

pub mod access;
pub mod commands;
pub mod directory;
pub mod memberships;
pub mod model;
pub mod names;
pub mod paging;
pub mod read_cache;
pub mod roles;
pub mod user_role_batch;
pub mod validate;

use crate::store::Store;
use read_cache::{Cached, Key, Lookup, ReadCache, WriteGuard};
use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

/// The domain service: the rules, over a [`Store`].
#[derive(Clone, Debug)]
pub struct Service {
    store: Store,
    cache: Arc<ReadCache>,
}

impl Service {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        let cache = Arc::new(ReadCache::new(store.single_process()));
        Self { store, cache }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Declares a write that may change cached reads in
    /// `organization_id`; hold it until the transaction has committed.
    pub fn acl_write(&self, organization_id: &str) -> WriteGuard {
        self.cache.writing(organization_id)
    }

    /// `key`'s value from the cache, or from `load` (cached when safe).
    async fn cached<T, F, Fut>(&self, key: Key, load: F) -> crate::error::Result<Arc<T>>
    where
        T: Cached,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = crate::error::Result<T>>,
    {
        let version = match self.cache.lookup(&key) {
            Lookup::Hit(value) => match T::unwrap(value) {
                Some(hit) => return Ok(hit),
                None => None,
            },
            Lookup::Miss(version) => version,
        };
        let value = Arc::new(load().await?);
        if let Some(version) = version {
            self.cache.insert(key, version, T::wrap(value.clone()));
        }
        Ok(value)
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
