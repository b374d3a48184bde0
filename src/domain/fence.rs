//! The current shared versions of organizations, for replicas sharing a
//! PostgreSQL database (see [`super::read_cache`]). A read that asks joins
//! the next query, never one already under way, so the version it gets was
//! read after it asked; and one query serves every read waiting, however
//! many there are.

use crate::{
    error::{Error, Result},
    store::{Store, acl_versions},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};
use tokio::sync::oneshot;

/// Coalesces version queries; see the module docs.
#[derive(Debug)]
pub struct Fence {
    store: Store,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Who waits for the next query, by organization.
    waiting: HashMap<String, Vec<oneshot::Sender<Result<i64>>>>,
    /// Whether a task is running queries.
    running: bool,
}

impl Fence {
    /// A fence over `store`.
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shared version of `organization_id`, read after this call began.
    pub async fn version(self: &Arc<Self>, organization_id: &str) -> Result<i64> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.lock();
            state
                .waiting
                .entry(organization_id.to_owned())
                .or_default()
                .push(reply);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            tokio::spawn(self.clone().run());
        }
        answer
            .await
            .map_err(|_| Error::internal("the version query was dropped"))?
    }

    /// Queries for whoever waits, round after round, until nobody does.
    async fn run(self: Arc<Self>) {
        loop {
            let waiting = {
                let mut state = self.lock();
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            let organizations: Vec<&str> = waiting.keys().map(String::as_str).collect();
            let versions = acl_versions::current(self.store.reader(), &organizations)
                .await
                .map_err(Error::from);
            for (organization, replies) in waiting {
                let answer = match &versions {
                    Ok(versions) => Ok(versions.get(&organization).copied().unwrap_or(0)),
                    Err(err) => Err(err.clone()),
                };
                for reply in replies {
                    let _ = reply.send(answer.clone());
                }
            }
        }
    }
}
