//! How long a new batch of the intake waits for more submissions before it
//! begins: group commit with a bounded delay, as PostgreSQL's
//! `commit_delay` or MySQL's `binlog_group_commit_sync_delay`, but waiting
//! only for callers that are likely to come.
//!
//! Callers that submit one operation after another split into cohorts:
//! while one batch commits, the callers of the previous one submit again
//! and form the next batch, so that each batch holds about half of them.
//! A batch costs much more than the operations in it, so the intake waits
//! briefly for the callers the last batch answered (and for those that
//! were already waiting) before it begins, and serves them all with one
//! commit. It never waits longer than half the last batch took, nor after
//! a pause, so a lone caller is never delayed.

use std::time::{Duration, Instant};

/// The longest a batch waits for more submissions.
const MAX_WAIT: Duration = Duration::from_millis(2);

/// What the intake knows about its last batch.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommit {
    /// The callers of the last batch plus those waiting when it ended.
    expected: usize,
    /// How long the last batch took.
    took: Duration,
    /// When it ended.
    ended: Instant,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            expected: 0,
            took: Duration::ZERO,
            ended: Instant::now(),
        }
    }
}

impl GroupCommit {
    /// With `queued` submissions at hand, how many to wait for and until
    /// when; `None` to begin at once.
    pub fn wait(&self, queued: usize) -> Option<(usize, Instant)> {
        let now = Instant::now();
        if queued >= self.expected || now.duration_since(self.ended) > MAX_WAIT {
            return None;
        }
        Some((self.expected, now + (self.took / 2).min(MAX_WAIT)))
    }

    /// Records a batch that answered `answered` callers and took `took`,
    /// with `queued` submissions waiting when it ended.
    pub fn ended(&mut self, answered: usize, took: Duration, queued: usize) {
        *self = Self {
            expected: answered + queued,
            took,
            ended: Instant::now(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_for_the_callers_of_the_last_batch_and_those_waiting() {
        let mut group = GroupCommit::default();
        group.ended(8, 4 * MS, 8);
        let (count, until) = group.wait(8).expect("waits");
        assert_eq!(count, 16);
        assert!(until <= Instant::now() + 2 * MS);
        assert!(group.wait(16).is_none());
    }

    #[test]
    fn a_lone_caller_never_waits() {
        let mut group = GroupCommit::default();
        assert!(group.wait(1).is_none());
        group.ended(1, 4 * MS, 0);
        assert!(group.wait(1).is_none());
    }

    #[test]
    fn the_wait_is_bounded_by_half_the_last_batch() {
        let mut group = GroupCommit::default();
        group.ended(10, MS, 0);
        let (_, until) = group.wait(1).expect("waits");
        assert!(until <= Instant::now() + MS / 2);
        group.ended(10, Duration::from_secs(1), 0);
        let (_, until) = group.wait(1).expect("waits");
        assert!(until <= Instant::now() + MAX_WAIT);
    }

    #[test]
    fn no_wait_after_a_pause() {
        let group = GroupCommit {
            expected: 16,
            took: 4 * MS,
            ended: Instant::now() - 2 * MAX_WAIT,
        };
        assert!(group.wait(1).is_none());
    }
}
