//! Business rules and transactions. Every public method validates its input,
//! checks existence, and changes the database in one transaction. Callers
//! (the gRPC layer, the operation workers) have already authorized the
//! request. No protobuf types here.

pub mod access;
pub mod commands;
pub mod directory;
pub mod fence;
pub mod memberships;
pub mod model;
pub mod names;
pub mod paging;
pub mod read_cache;
pub mod roles;
pub mod solo;
pub mod user_role_batch;
pub mod validate;

use crate::{
    error::Result,
    store::{Store, WriteTx, acl_versions},
};
use fence::Fence;
use read_cache::{Cached, Key, Lookup, ReadCache, WriteGuard};
use sea_orm::ConnectionTrait;
use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

/// The domain service: the rules, over a [`Store`].
#[derive(Clone, Debug)]
pub struct Service {
    store: Store,
    cache: Arc<ReadCache>,
    /// For replicas sharing the database: whether the cache is current.
    fence: Option<Arc<Fence>>,
}

impl Service {
    /// A service over `store`, caching reads within about `cache_bytes`;
    /// on PostgreSQL it becomes solo when alone if `solo` allows.
    pub fn new(store: Store, cache_bytes: usize, solo: bool) -> Self {
        let fence = (!store.single_process()).then(|| Fence::new(store.clone(), solo));
        Self {
            store,
            cache: Arc::new(ReadCache::new(cache_bytes)),
            fence,
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Declares a write that may change cached reads in
    /// `organization_id`; hold it until the transaction has committed, and
    /// [`Service::publish`] the change just before the commit.
    pub fn acl_write(&self, organization_id: &str) -> WriteGuard {
        self.cache.writing(organization_id)
    }

    /// Tells other replicas sharing the database, in `tx`, that it changes
    /// cached reads of `organizations` (nothing to tell on SQLite), after
    /// waiting while another replica is solo ([`solo`]). Call it last
    /// before the commit: it locks the organizations' version rows, and a
    /// long transaction holding them would hold up every other write to
    /// the same organizations.
    pub async fn publish(&self, tx: &impl ConnectionTrait, organizations: &[&str]) -> Result<()> {
        if let Some(fence) = &self.fence {
            let solo = fence.solo().write_token().await;
            acl_versions::bump(tx, organizations, solo).await?;
        }
        Ok(())
    }

    /// Begins a write transaction that may change cached reads in
    /// `organization_id`; see [`AclTx`].
    async fn write_acl(&self, organization_id: &str) -> Result<AclTx> {
        let guard = self.acl_write(organization_id);
        Ok(AclTx {
            tx: self.store.write().await?,
            service: self.clone(),
            guard,
        })
    }

    /// `key`'s value from the cache, or from `load` (cached when safe).
    async fn cached<T, F, Fut>(&self, key: Key, load: F) -> Result<Arc<T>>
    where
        T: Cached,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let shared = match &self.fence {
            Some(fence) => fence.version(key.organization()).await?,
            None => 0,
        };
        let version = match self.cache.lookup(&key, shared) {
            Lookup::Hit(value) => match T::unwrap(value) {
                Some(hit) => return Ok(hit),
                None => None,
            },
            Lookup::Miss(version) => version,
        };
        let mut value = load().await?;
        let Some(version) = version else {
            return Ok(Arc::new(value));
        };
        value.share(&mut |role| self.cache.intern_role(version, shared, role));
        let value = Arc::new(value);
        let size = value.size();
        self.cache
            .insert(key, version, shared, size, T::wrap(value.clone()));
        Ok(value)
    }
}

/// A write transaction that may change cached reads of one organization:
/// it holds [`Service::acl_write`]'s guard until it has committed, and
/// [`Service::publish`]es the change as it commits.
struct AclTx {
    tx: WriteTx,
    service: Service,
    guard: WriteGuard,
}

impl AclTx {
    /// Publishes the change and commits.
    async fn commit(self) -> Result<()> {
        self.service
            .publish(&*self.tx, &[self.guard.organization_id()])
            .await?;
        self.tx.commit().await
    }
}

impl std::ops::Deref for AclTx {
    type Target = sea_orm::DatabaseTransaction;
    fn deref(&self) -> &sea_orm::DatabaseTransaction {
        &self.tx
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
