//! Cancellations asked for in this process but not yet written. On SQLite a
//! `CancelOperation` waits for the write gate like any write, possibly
//! behind workers running large operations; a worker that claims an
//! operation meanwhile would start it although the cancel came first. So
//! the cancel is registered here before it waits, and a worker cancels any
//! claimed operation it finds registered instead of running it.

use crate::store::operations::OperationRow;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

/// Ids of operations whose cancellation is on its way to the database,
/// with how many calls are cancelling each.
#[derive(Clone, Debug, Default)]
pub struct CancelRequests(Arc<Mutex<HashMap<String, usize>>>);

/// A registered cancellation; unregistered when dropped (once written, or
/// when the call failed).
#[derive(Debug)]
pub struct Registered {
    requests: CancelRequests,
    id: String,
}

impl CancelRequests {
    /// Registers the cancellation of operation `id` until the guard drops.
    pub fn register(&self, id: &str) -> Registered {
        *self.ids().entry(id.to_owned()).or_default() += 1;
        Registered {
            requests: self.clone(),
            id: id.to_owned(),
        }
    }

    /// Flags the claimed `rows` whose cancellation is registered, so that
    /// the runner cancels them instead of running them.
    pub fn flag(&self, rows: &mut [OperationRow]) {
        let ids = self.ids();
        if ids.is_empty() {
            return;
        }
        for row in rows.iter_mut().filter(|row| ids.contains_key(&row.id)) {
            row.cancel_requested = true;
        }
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // The set stays consistent whatever panicked while holding it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut ids = self.requests.ids();
        if let Some(calls) = ids.get_mut(&self.id) {
            *calls -= 1;
            if *calls == 0 {
                ids.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::operations::NewOperation;

    fn claimed(id: &str) -> OperationRow {
        NewOperation {
            id: id.into(),
            organization_id: "o".into(),
            target: "organizations/o/users/u".into(),
            verb: "AssignUserRoles".into(),
            principal: "p".into(),
            request_id: None,
            trace_id: "t".into(),
            command: "{}".into(),
            requested_items: 1,
            create_time: 0,
        }
        .claimed_row("w", 1)
    }

    #[test]
    fn flags_registered_rows_until_every_call_is_done() {
        let requests = CancelRequests::default();
        let mut rows = vec![claimed("a"), claimed("b")];
        let first = requests.register("b");
        let second = requests.register("b");
        requests.flag(&mut rows);
        assert!(!rows[0].cancel_requested);
        assert!(rows[1].cancel_requested);

        drop(first);
        let mut meanwhile = vec![claimed("b")];
        requests.flag(&mut meanwhile);
        assert!(
            meanwhile[0].cancel_requested,
            "the second call still cancels"
        );
        drop(second);
        let mut later = vec![claimed("b")];
        requests.flag(&mut later);
        assert!(!later[0].cancel_requested, "unregistered once dropped");
    }
}
