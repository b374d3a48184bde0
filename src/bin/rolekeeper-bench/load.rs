//! The closed-loop load driver: `clients` tasks each send one request,
//! wait for it, and send the next, for a warm-up and then a measured window.
//! Only requests that start and finish inside the window count. Every loop
//! is bounded both by time and by a request count.

use crate::{BoxError, Result, fail};
use serde::Serialize;
use std::{future::Future, sync::Arc, time::Duration};
use tokio::{task::JoinSet, time::Instant};

/// Most requests one phase sends over all clients (a safety bound; the
/// window normally ends first).
const MAX_REQUESTS_PER_PHASE: u64 = 20_000_000;

/// Latency samples kept per client; requests beyond still count.
const MAX_SAMPLES_PER_CLIENT: usize = 1_000_000;

/// A request still running this long after the window closed is abandoned.
const STRAGGLER_GRACE: Duration = Duration::from_secs(90);

/// The boxed future every request closure returns.
pub type RequestFuture = std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// How hard and how long a phase drives.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Concurrent client tasks.
    pub clients: usize,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// What one phase measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Requests that succeeded inside the window.
    pub completed: u64,
    /// Requests that failed inside the window.
    pub errors: u64,
    /// `completed` per second of window.
    pub rps: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// The first failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Throughput of each slice of the window, in the order they ran.
    pub slice_rps: Vec<f64>,
}

/// What the measured windows of one phase collected so far.
#[derive(Debug, Default)]
pub struct Sample {
    tally: Tally,
    window: Duration,
    slice_rps: Vec<f64>,
}

impl Sample {
    /// Adds one more measured window.
    pub fn extend(&mut self, slice: Sample) {
        self.tally.merge(slice.tally);
        self.window += slice.window;
        self.slice_rps.extend(slice.slice_rps);
    }

    /// Throughput over all windows and percentiles of the kept samples.
    pub fn stats(mut self) -> Stats {
        self.tally.micros.sort_unstable();
        let seconds = self.window.as_secs_f64();
        Stats {
            completed: self.tally.completed,
            errors: self.tally.errors,
            rps: if seconds > 0.0 {
                self.tally.completed as f64 / seconds
            } else {
                0.0
            },
            p50_ms: percentile_ms(&self.tally.micros, 0.50),
            p99_ms: percentile_ms(&self.tally.micros, 0.99),
            first_error: self.tally.first_error,
            slice_rps: self.slice_rps,
        }
    }
}

/// One client's tally.
#[derive(Debug, Default)]
struct Tally {
    completed: u64,
    errors: u64,
    micros: Vec<u32>,
    first_error: Option<String>,
}

impl Tally {
    fn record(&mut self, outcome: Result<()>, latency: Duration) {
        match outcome {
            Ok(()) => {
                self.completed += 1;
                if self.micros.len() < MAX_SAMPLES_PER_CLIENT {
                    let micros = latency.as_micros().min(u128::from(u32::MAX));
                    self.micros.push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
            }
            Err(err) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.completed += other.completed;
        self.errors += other.errors;
        self.micros.extend(other.micros);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Runs `request(client, sequence)` in a closed loop on `shape.clients`
/// tasks and returns what the measured window collected. Fails when
/// nothing succeeded.
pub async fn closed_loop<F, Fut>(shape: Shape, request: F) -> Result<Sample>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let request = Arc::new(request);
    let window_start = Instant::now() + shape.warmup;
    let window_end = window_start + shape.duration;
    let per_client = MAX_REQUESTS_PER_PHASE / shape.clients.max(1) as u64;
    let mut tasks = JoinSet::new();
    for client in 0..shape.clients {
        let request = Arc::clone(&request);
        tasks.spawn(async move {
            client_loop(
                client,
                per_client,
                window_start,
                window_end,
                request.as_ref(),
            )
            .await
        });
    }
    let mut total = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined.map_err(|e| -> BoxError { format!("client task: {e}").into() })?);
    }
    if total.completed == 0 {
        return fail(format!(
            "no request succeeded ({} failed; first: {})",
            total.errors,
            total.first_error.as_deref().unwrap_or("none")
        ));
    }
    Ok(Sample {
        slice_rps: vec![total.completed as f64 / shape.duration.as_secs_f64()],
        tally: total,
        window: shape.duration,
    })
}

/// One client task: requests back to back until the window closes.
async fn client_loop<F, Fut>(
    client: usize,
    max_requests: u64,
    window_start: Instant,
    window_end: Instant,
    request: &F,
) -> Tally
where
    F: Fn(usize, u64) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut tally = Tally::default();
    for sequence in 0..max_requests {
        let began = Instant::now();
        if began >= window_end {
            break;
        }
        let outcome =
            match tokio::time::timeout_at(window_end + STRAGGLER_GRACE, request(client, sequence))
                .await
            {
                Ok(outcome) => outcome,
                Err(_) => fail("the request did not finish in time"),
            };
        let ended = Instant::now();
        if began >= window_start && ended <= window_end {
            tally.record(outcome, ended - began);
        }
    }
    tally
}

/// The `q` quantile (nearest rank) of sorted microsecond samples, in ms.
pub fn percentile_ms(sorted_micros: &[u32], q: f64) -> f64 {
    if sorted_micros.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted_micros.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_micros.len()) - 1;
    f64::from(sorted_micros[index]) / 1000.0
}

/// A well-mixed 64-bit number from a client, a sequence number and a salt
/// (SplitMix64), so each request picks its target without shared state.
pub fn mix(client: usize, sequence: u64, salt: u64) -> u64 {
    let mut z = (client as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(sequence)
        .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&samples, 0.50), 50.0);
        assert_eq!(percentile_ms(&samples, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
        assert_eq!(percentile_ms(&[7000], 0.99), 7.0);
    }

    #[test]
    fn mix_spreads_neighbours() {
        assert_ne!(mix(0, 0, 1), mix(0, 1, 1));
        assert_ne!(mix(0, 0, 1), mix(1, 0, 1));
        assert_ne!(mix(0, 0, 1), mix(0, 0, 2));
    }
}
