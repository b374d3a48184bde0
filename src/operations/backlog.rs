//! The number of operations not done, for the queue bound, without a COUNT
//! on every submission: the count is read from the database at most every
//! [`REFRESH`] and counted up locally in between. Operations that finish
//! are only noticed at the next refresh, so within one process the figure
//! errs on the high side; other replicas' submissions show at the next
//! refresh.

use crate::{
    error::Result,
    store::{Store, operations as db},
};
use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

/// How old the count may get before it is read again.
const REFRESH: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
struct Count {
    not_done: u64,
    read_at: Option<Instant>,
}

/// A shared, mostly cached count of operations not done.
#[derive(Debug, Clone, Default)]
pub struct Backlog(Arc<Mutex<Count>>);

impl Backlog {
    fn lock(&self) -> MutexGuard<'_, Count> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether at least `limit` operations are not done.
    pub async fn at_least(&self, store: &Store, limit: u64) -> Result<bool> {
        let stale = self.lock().read_at.is_none_or(|t| t.elapsed() >= REFRESH);
        if stale {
            let not_done = db::count_not_done(store.reader()).await?;
            *self.lock() = Count {
                not_done,
                read_at: Some(Instant::now()),
            };
        }
        Ok(self.lock().not_done >= limit)
    }

    /// Counts `n` more operations accepted and not done.
    pub fn add(&self, n: u64) {
        let mut count = self.lock();
        count.not_done = count.not_done.saturating_add(n);
    }
}
