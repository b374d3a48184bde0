//! Readiness: a probe that pings the database every second and flips gRPC
//! health between `SERVING` and `NOT_SERVING` without a restart, the flags
//! the handlers consult to fail fast, and the periodic gauges (operations by
//! state, queue depth, oldest pending age, connection pool use).

use crate::{domain::now_micros, error::Error, store::Store};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::sync::watch;
use tonic_health::{ServingStatus, server::HealthReporter};

/// How often the database is pinged.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// A ping slower than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Gauges are sampled every this many probes.
const SAMPLE_EVERY: u32 = 5;

/// What handlers need to know before touching the database.
#[derive(Debug, Default)]
pub struct Readiness {
    database_down: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// `UNAVAILABLE` with a retry hint while draining or while the database
    /// is unreachable; `Ok` otherwise.
    pub fn check(&self) -> Result<(), Error> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(shutting_down());
        }
        if self.database_down.load(Ordering::Relaxed) {
            return Err(Error::Unavailable {
                reason: "DATABASE_UNAVAILABLE".into(),
                message: "the database is unavailable; retry later".into(),
                retry_after: PROBE_INTERVAL,
            });
        }
        Ok(())
    }

    /// Marks the server as draining: new calls are refused.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// `UNAVAILABLE` for calls refused (or ended) because the server drains.
pub fn shutting_down() -> Error {
    Error::Unavailable {
        reason: "SHUTTING_DOWN".into(),
        message: "the server is shutting down; retry on another instance".into(),
        retry_after: Duration::from_secs(1),
    }
}

/// Sets every reported service (and `""`) to `status`.
pub async fn set_health(health: &HealthReporter, services: &[&str], status: ServingStatus) {
    for name in services.iter().copied().chain([""]) {
        health.set_service_status(name, status).await;
    }
}

/// Runs the probe until `stop` turns true.
pub fn spawn(
    store: Store,
    readiness: Arc<Readiness>,
    health: HealthReporter,
    services: Vec<&'static str>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick: u32 = 0;
        loop {
            let up = matches!(
                tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await,
                Ok(Ok(()))
            );
            let was_down = readiness.database_down.swap(!up, Ordering::Relaxed);
            metrics::gauge!("rolekeeper_database_up").set(if up { 1.0 } else { 0.0 });
            if was_down == up && !readiness.draining.load(Ordering::Relaxed) {
                let status = if up {
                    tracing::info!("database reachable again: serving");
                    ServingStatus::Serving
                } else {
                    tracing::warn!("database unreachable: not serving");
                    ServingStatus::NotServing
                };
                set_health(&health, &services, status).await;
            }
            if up && tick.is_multiple_of(SAMPLE_EVERY) {
                sample(&store).await;
            }
            tick = tick.wrapping_add(1);
            tokio::select! {
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

/// Records the operation and pool gauges.
async fn sample(store: &Store) {
    let (size, idle) = store.pool_stats();
    metrics::gauge!("rolekeeper_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("rolekeeper_db_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    match crate::store::operations::stats(store.reader()).await {
        Ok(stats) => {
            for (state, count) in stats.by_state {
                metrics::gauge!("rolekeeper_operations", "state" => state).set(count as f64);
            }
            metrics::gauge!("rolekeeper_operation_queue_depth").set(stats.not_done as f64);
            let age = stats
                .oldest_pending
                .map(|t| (now_micros() - t).max(0) as f64 / 1e6)
                .unwrap_or(0.0);
            metrics::gauge!("rolekeeper_operation_oldest_pending_age_seconds").set(age);
        }
        Err(err) => tracing::debug!(%err, "operation gauges not sampled"),
    }
}
