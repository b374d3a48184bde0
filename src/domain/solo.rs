//! Solo mode: a replica alone on a PostgreSQL database answers cached reads
//! from memory without first asking the database for versions
//! ([`super::fence`]), as one SQLite process does, and still never answers
//! from before a change another replica has committed:
//! - it is solo only while it holds the solo lock exclusively, and no
//!   other replica's write commits meanwhile (each waits for the lock
//!   shared); a replica that starts waits for the lock shared as well,
//!   which the solo one sees within a poll (100 ms) and steps down, so
//!   from then on both ask for versions;
//! - it answers from memory only within a lease (1 s) it renews every
//!   poll on the database's clock, and ends 200 ms before the database
//!   does: if it loses its connection (and with it the lock), writes of
//!   other replicas wait for the lease to run out;
//! - each time it becomes solo, its reads compare entries with a new tag
//!   (negative, so never a database version), so nothing loaded before
//!   serves a read after.
//!
//! The database side is `store::solo`.

use crate::store::{Store, solo::Presence};
use sea_orm::DbErr;
use std::{
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::{Duration, Instant},
};
use tokio::sync::Notify;

/// How often the lease is renewed, or becoming solo tried.
const POLL: Duration = Duration::from_millis(100);
/// How long a lease runs on the database's clock.
const LEASE: Duration = Duration::from_secs(1);
/// How much earlier than the database this replica takes its lease to end.
const MARGIN: Duration = Duration::from_millis(200);
/// The pause before opening another presence connection after one failed.
const RECONNECT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Other replicas may write: reads ask for versions.
    Shared,
    /// Becoming solo: writes wait to learn which it will be.
    Entering,
    /// Holding the solo lock under `token`; reads compare with `tag` until
    /// `reads_until`.
    Solo {
        token: i64,
        tag: i64,
        reads_until: Instant,
    },
}

/// This replica's solo state, kept by a background task; see the module
/// docs.
#[derive(Debug)]
pub struct Solo {
    phase: Mutex<Phase>,
    /// Notified whenever the phase changes.
    changed: Notify,
}

impl Solo {
    /// Starts the task that keeps the state over `store`; it ends (and steps
    /// down) once the returned handle is dropped. Unless `may_be_solo`, the
    /// replica only keeps others from becoming solo while it runs.
    pub fn spawn(store: Store, may_be_solo: bool) -> Arc<Self> {
        let solo = Arc::new(Self {
            phase: Mutex::new(Phase::Shared),
            changed: Notify::new(),
        });
        tokio::spawn(keep(Arc::downgrade(&solo), store, may_be_solo));
        solo
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, phase: Phase) {
        let solo = matches!(phase, Phase::Solo { .. });
        *self.lock() = phase;
        self.changed.notify_waiters();
        metrics::gauge!("rolekeeper_solo").set(if solo { 1.0 } else { 0.0 });
    }

    /// While solo within the lease, the version cached reads compare
    /// entries with; otherwise `None`: ask the database.
    pub fn read_tag(&self) -> Option<i64> {
        match *self.lock() {
            Phase::Solo {
                tag, reads_until, ..
            } if Instant::now() < reads_until => Some(tag),
            _ => None,
        }
    }

    /// The token a write passes to the write fence: this replica's while
    /// solo, `None` otherwise. Waits while this replica is becoming solo.
    pub async fn write_token(&self) -> Option<i64> {
        loop {
            let changed = self.changed.notified();
            match *self.lock() {
                Phase::Entering => {}
                Phase::Solo { token, .. } => return Some(token),
                Phase::Shared => return None,
            }
            changed.await;
        }
    }
}

/// The background task: one presence connection after another, until the
/// state is dropped.
async fn keep(solo: Weak<Solo>, store: Store, may_be_solo: bool) {
    let mut stints = 0;
    while solo.strong_count() > 0 {
        if let Err(err) = attend(&solo, &store, may_be_solo, &mut stints).await {
            if let Some(solo) = solo.upgrade() {
                solo.set(Phase::Shared);
            }
            tracing::warn!(%err, "presence connection failed; cached reads ask the database for versions");
            tokio::time::sleep(RECONNECT).await;
        }
    }
}

/// This replica's token and tag while it is solo.
type Held = Option<(i64, i64)>;

/// One presence connection's life; returns once the state is dropped.
async fn attend(
    weak: &Weak<Solo>,
    store: &Store,
    may_be_solo: bool,
    stints: &mut i64,
) -> Result<(), DbErr> {
    let mut presence = Presence::join(store).await?;
    let mut held: Held = None;
    loop {
        tokio::time::sleep(POLL).await;
        let Some(solo) = weak.upgrade() else {
            if let Some((token, _)) = held {
                let _ = presence.step_down(token).await;
            }
            presence.close().await;
            return Ok(());
        };
        held = match held {
            Some((token, tag)) => renew(&solo, &mut presence, token, tag).await?,
            None if may_be_solo && presence.try_solo().await? => {
                *stints += 1;
                enter(&solo, &mut presence, -*stints).await?
            }
            None if may_be_solo => None,
            None => {
                presence.check().await?;
                None
            }
        };
    }
}

/// Becomes solo, holding the solo lock: names this replica, waits for the
/// writes of an earlier solo replica and for its lease, then takes a lease.
async fn enter(solo: &Solo, presence: &mut Presence, tag: i64) -> Result<Held, DbErr> {
    solo.set(Phase::Entering);
    let token = uuid::Uuid::new_v4().as_u64_pair().0 as i64;
    let last_lease = presence.claim(token).await?;
    presence.drain().await?;
    tokio::time::sleep(last_lease).await;
    renew(solo, presence, token, tag).await
}

/// Renews the lease; steps down instead if another replica waits.
async fn renew(solo: &Solo, presence: &mut Presence, token: i64, tag: i64) -> Result<Held, DbErr> {
    let sent = Instant::now();
    match presence.renew(token, LEASE).await? {
        Some(false) => {
            solo.set(Phase::Solo {
                token,
                tag,
                reads_until: sent + LEASE - MARGIN,
            });
            Ok(Some((token, tag)))
        }
        Some(true) => {
            solo.set(Phase::Shared);
            presence.step_down(token).await?;
            tracing::info!("another replica shares the database; cached reads ask it for versions");
            Ok(None)
        }
        None => Err(DbErr::Custom("another replica was named solo".into())),
    }
}
