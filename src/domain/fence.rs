//! The current shared versions of organizations, for replicas sharing a
//! PostgreSQL database (see [`super::read_cache`]). A read that asks joins
//! the next query, never one already under way, so the version it gets was
//! read after it asked; one query serves every read waiting, however many
//! there are; and up to two queries run at once, each on a connection
//! of its own, so that a read waits for about one round trip rather than
//! for the query under way and then its own. A replica alone on the
//! database asks nothing ([`Solo`]).

use super::solo::Solo;
use crate::{
    error::{Error, Result},
    store::{Store, acl_versions::VersionConnection},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};
use tokio::sync::oneshot;

/// Version queries that may run at once (and connections kept for them).
const LANES: usize = 2;

/// Coalesces version queries; see the module docs.
#[derive(Debug)]
pub struct Fence {
    store: Store,
    state: Mutex<State>,
    solo: Arc<Solo>,
}

#[derive(Debug, Default)]
struct State {
    /// Who waits for the next query, by organization.
    waiting: HashMap<String, Vec<oneshot::Sender<Result<i64>>>>,
    /// Lanes running queries.
    running: usize,
    /// Open connections no lane is using.
    idle: Vec<VersionConnection>,
}

impl Fence {
    /// A fence over `store`; this replica becomes solo when alone if
    /// `solo` allows.
    pub fn new(store: Store, solo: bool) -> Arc<Self> {
        Arc::new(Self {
            solo: Solo::spawn(store.clone(), solo),
            store,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This replica's solo state.
    pub fn solo(&self) -> &Solo {
        &self.solo
    }

    /// The shared version of `organization_id`, read after this call began;
    /// while this replica is solo, the tag of its stint instead.
    pub async fn version(self: &Arc<Self>, organization_id: &str) -> Result<i64> {
        if let Some(tag) = self.solo.read_tag() {
            return Ok(tag);
        }
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.lock();
            state
                .waiting
                .entry(organization_id.to_owned())
                .or_default()
                .push(reply);
            let start = state.running < LANES;
            state.running += usize::from(start);
            start
        };
        if start {
            tokio::spawn(self.clone().lane());
        }
        answer
            .await
            .map_err(|_| Error::internal("the version query was dropped"))?
    }

    /// One lane: queries for whoever waits, round after round, until nobody
    /// does; then leaves its connection for the next lane.
    async fn lane(self: Arc<Self>) {
        let mut connection: Option<VersionConnection> = None;
        loop {
            let waiting = {
                let mut state = self.lock();
                if state.waiting.is_empty() {
                    state.running -= 1;
                    state.idle.extend(connection);
                    return;
                }
                connection = connection.or_else(|| state.idle.pop());
                std::mem::take(&mut state.waiting)
            };
            let organizations: Vec<&str> = waiting.keys().map(String::as_str).collect();
            let versions = self.query(&mut connection, &organizations).await;
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

    /// Asks on `connection`, opening one first if there is none; a
    /// connection that failed is dropped, to be opened again next time.
    async fn query(
        &self,
        connection: &mut Option<VersionConnection>,
        organizations: &[&str],
    ) -> Result<HashMap<String, i64>> {
        let mut open = match connection.take() {
            Some(open) => open,
            None => VersionConnection::open(&self.store).await?,
        };
        let versions = open.current(organizations).await?;
        *connection = Some(open);
        Ok(versions)
    }
}
