//! Business rules and transactions. Every public method validates its input,
//! checks existence, and changes the database in one transaction. Callers
//! (the gRPC layer, the operation workers) have already authorized the
//! request. No protobuf types here.

pub mod access;
pub mod acl_cache;
pub mod commands;
pub mod directory;
pub mod memberships;
pub mod model;
pub mod names;
pub mod paging;
pub mod roles;
pub mod validate;

use crate::store::Store;
use acl_cache::{AclCache, WriteGuard};
use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

/// The domain service: the rules, over a [`Store`].
#[derive(Clone, Debug)]
pub struct Service {
    store: Store,
    acl: Arc<AclCache>,
}

impl Service {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        let acl = Arc::new(AclCache::new(store.single_process()));
        Self { store, acl }
    }

    /// Declares a write that may change permission decisions in
    /// `organization_id`; hold it until the transaction has committed.
    pub fn acl_write(&self, organization_id: &str) -> WriteGuard {
        self.acl.writing(organization_id)
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
