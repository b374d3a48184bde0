//! The results as ratios to their baselines: a Markdown table on stdout and,
//! on request, a JSON file with fixed top-level keys.

use crate::{
    Result,
    environment::Backend,
    load::Stats,
    options::{SeedPlan, Settings},
    phases::Results,
    seed::Seeded,
};
use serde::Serialize;
use serde_json::{Value, json};
use std::{fmt::Write as _, path::Path, time::Duration};

/// GetRole and ListUserRoles should reach this share of the health ceiling.
const TARGET_READ: f64 = 0.6;
/// CheckPermission should reach this share of the health ceiling.
const TARGET_CHECK: f64 = 0.8;
/// Completed operations per second should reach the raw commit rate.
const TARGET_ASSIGN: f64 = 1.0;
/// AddRoleMembers with 10,000 users should finish within this on SQLite.
const TARGET_ADD_MEMBERS_SECONDS: f64 = 1.0;
/// The idle server should stay below this resident size.
const TARGET_IDLE_RSS_MIB: f64 = 30.0;

/// Resident memory may differ this much between the first and the last
/// round (allocator noise) and still count as no growth.
const RSS_GROWTH_TOLERANCE_MIB: f64 = 2.0;

/// The JSON file: a struct, so the fixed keys keep their order.
#[derive(Debug, Clone, Serialize)]
pub struct JsonReport {
    /// GetRole per second / Health/Check per second.
    pub ratio_get_role: f64,
    /// ListUserRoles per second / Health/Check per second.
    pub ratio_list_user_roles: f64,
    /// CheckPermission per second / Health/Check per second.
    pub ratio_check_permission: f64,
    /// Completed AssignUserRoles operations per second / raw commits per second.
    pub ratio_assign_ops_vs_commit: f64,
    /// Seconds from accepted to done of AddRoleMembers with the bulk users.
    pub add_members_10k_seconds: f64,
    /// Server `VmRSS` idle after seeding, MiB.
    pub rss_idle_mib: f64,
    /// Server `VmRSS` at the end of the load phases, MiB.
    pub rss_load_mib: f64,
    /// Server `VmHWM` at the end, MiB.
    pub rss_peak_mib: f64,
    /// Server `VmRSS` after each round of load phases, MiB.
    pub rss_rounds_mib: Vec<f64>,
    /// `VmRSS` after the last round minus after the second, MiB (the first
    /// round warms caches, pools and allocator arenas).
    pub rss_growth_mib: f64,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Concurrent clients.
    pub clients: usize,
    /// HTTP/2 connections.
    pub channels: usize,
    /// Measured seconds per phase.
    pub duration_seconds: u64,
    /// Warm-up seconds per phase.
    pub warmup_seconds: u64,
    /// Slices each phase's measured time was cut into, taking turns with
    /// its baseline's.
    pub slices: usize,
    /// Whether the health and read phases decoded their answers
    /// (`--decode-answers`).
    pub decode_answers: bool,
    /// Each ratio's lowest and highest value over the slices.
    pub ratio_ranges: Value,
    /// Which targets were met.
    pub targets_met: Value,
    /// Absolute figures of every phase.
    pub phases: Value,
    /// The AddRoleMembers measurement.
    pub add_members: Value,
    /// Server memory idle, after load, at the end.
    pub memory: Value,
    /// The data set and how long seeding took.
    pub seed: Value,
}

/// One run's figures, ready to print.
#[derive(Debug, Clone)]
pub struct Report {
    backend: Backend,
    clients: usize,
    channels: usize,
    warmup: Duration,
    duration: Duration,
    slices: usize,
    decode_answers: bool,
    plan: SeedPlan,
    seeded: Seeded,
    results: Results,
}

impl Report {
    /// Collects what the table and the JSON need.
    pub fn new(settings: &Settings, backend: Backend, seeded: &Seeded, results: Results) -> Self {
        Self {
            backend,
            clients: settings.clients,
            channels: settings.channels,
            warmup: settings.warmup,
            duration: settings.duration,
            slices: settings.slices,
            decode_answers: settings.decode_answers,
            plan: settings.seed,
            seeded: seeded.clone(),
            results,
        }
    }

    fn ratio(&self, stats: &Stats) -> f64 {
        ratio(stats.rps, self.results.health.rps)
    }

    fn assign_ratio(&self) -> f64 {
        ratio(self.results.assign_ops.rps, self.results.raw_commit.rps)
    }

    /// Whether the AddRoleMembers target applies: SQLite and 10,000 users.
    fn add_members_target_applies(&self) -> bool {
        self.backend == Backend::Sqlite && self.plan.bulk_users == 10_000
    }

    /// The Markdown table printed at the end of a run.
    pub fn table(&self) -> String {
        let r = &self.results;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nrolekeeper-bench: {}, {} clients on {} channels, read answers {}, {} s per phase \
             in {} slices taking turns with the baseline's (+{} s warm-up)",
            self.backend,
            self.clients,
            self.channels,
            if self.decode_answers {
                "decoded"
            } else {
                "undecoded"
            },
            self.duration.as_secs(),
            self.slices,
            self.warmup.as_secs()
        );
        let _ = writeln!(
            out,
            "seeded {} in {:.1} s\n",
            self.plan.describe(),
            self.seeded.total_seconds
        );
        out.push_str(
            "| figure | per second | ratio | slices | target | p50 ms | p99 ms | errors |\n",
        );
        out.push_str("|---|---:|---:|---:|---|---:|---:|---:|\n");
        let reads = [
            ("GetRole", &r.get_role, TARGET_READ),
            ("ListUserRoles", &r.list_user_roles, TARGET_READ),
            ("CheckPermission", &r.check_permission, TARGET_CHECK),
        ];
        row(&mut out, "Health/Check (gRPC ceiling)", &r.health, None);
        for (label, stats, target) in reads {
            row(&mut out, label, stats, Some((&r.health, target)));
        }
        row(
            &mut out,
            "raw commit, 1 row/tx (DB ceiling)",
            &r.raw_commit,
            None,
        );
        row(
            &mut out,
            "Assign/RevokeUserRoles submit → done",
            &r.assign_ops,
            Some((&r.raw_commit, TARGET_ASSIGN)),
        );
        out.push('\n');
        self.bulk_and_memory_lines(&mut out);
        out
    }

    fn bulk_and_memory_lines(&self, out: &mut String) {
        let r = &self.results;
        let add = &r.add_members;
        let add_target = if self.add_members_target_applies() {
            format!(
                "target < {TARGET_ADD_MEMBERS_SECONDS} s: {}",
                verdict(add.done_seconds < TARGET_ADD_MEMBERS_SECONDS)
            )
        } else {
            "(the < 1 s target is for 10,000 users on SQLite)".to_owned()
        };
        let _ = writeln!(
            out,
            "- AddRoleMembers, {} users: accepted in {:.1} ms, done {:.3} s after acceptance; {add_target}",
            add.users, add.accept_ms, add.done_seconds
        );
        let _ = writeln!(
            out,
            "- server RSS: idle {:.1} MiB (target < {TARGET_IDLE_RSS_MIB} MiB: {}), end of load {:.1} MiB, peak {:.1} MiB",
            r.memory_idle.rss_mib,
            verdict(r.memory_idle.rss_mib < TARGET_IDLE_RSS_MIB),
            r.memory_load.rss_mib,
            r.memory_end.peak_mib
        );
        let rounds: Vec<String> = r
            .memory_rounds
            .iter()
            .map(|m| format!("{:.1}", m.rss_mib))
            .collect();
        let growth = match self.rss_growth_target() {
            Some(met) => format!(
                "growth after the warm-up round {:+.1} MiB; target: no growth beyond \
                 {RSS_GROWTH_TOLERANCE_MIB} MiB of allocator noise: {}",
                self.rss_growth(),
                verdict(met)
            ),
            None => "run with --rounds 3 or more to see growth".to_owned(),
        };
        let _ = writeln!(
            out,
            "- server RSS after each of {} rounds: {} MiB ({growth})",
            rounds.len(),
            rounds.join(", "),
        );
    }

    /// The JSON document: the fixed keys first, then the details.
    pub fn json(&self) -> JsonReport {
        let r = &self.results;
        JsonReport {
            ratio_get_role: round(self.ratio(&r.get_role)),
            ratio_list_user_roles: round(self.ratio(&r.list_user_roles)),
            ratio_check_permission: round(self.ratio(&r.check_permission)),
            ratio_assign_ops_vs_commit: round(self.assign_ratio()),
            add_members_10k_seconds: round(r.add_members.done_seconds),
            rss_idle_mib: round(r.memory_idle.rss_mib),
            rss_load_mib: round(r.memory_load.rss_mib),
            rss_peak_mib: round(r.memory_end.peak_mib),
            rss_rounds_mib: r.memory_rounds.iter().map(|m| round(m.rss_mib)).collect(),
            rss_growth_mib: round(self.rss_growth()),
            backend: self.backend.to_string(),
            clients: self.clients,
            channels: self.channels,
            duration_seconds: self.duration.as_secs(),
            warmup_seconds: self.warmup.as_secs(),
            slices: self.slices,
            decode_answers: self.decode_answers,
            ratio_ranges: json!({
                "get_role": slice_range(&r.get_role, &r.health),
                "list_user_roles": slice_range(&r.list_user_roles, &r.health),
                "check_permission": slice_range(&r.check_permission, &r.health),
                "assign_ops_vs_commit": slice_range(&r.assign_ops, &r.raw_commit),
            }),
            targets_met: self.targets_met(),
            phases: json!({
                "health_check": r.health,
                "get_role": r.get_role,
                "list_user_roles": r.list_user_roles,
                "check_permission": r.check_permission,
                "raw_commit": r.raw_commit,
                "assign_ops": r.assign_ops,
            }),
            add_members: json!(r.add_members),
            memory: json!({
                "idle": r.memory_idle,
                "load": r.memory_load,
                "end": r.memory_end,
            }),
            seed: json!({
                "orgs": self.plan.orgs,
                "users": self.plan.users(),
                "users_per_org": self.plan.users_per_org,
                "roles_per_org": self.plan.roles,
                "permissions_per_role": self.plan.permissions,
                "roles_per_user": self.plan.roles_per_user,
                "bulk_users": self.plan.bulk_users,
                "timings": self.seeded,
            }),
        }
    }

    fn targets_met(&self) -> Value {
        let r = &self.results;
        json!({
            "get_role": self.ratio(&r.get_role) >= TARGET_READ,
            "list_user_roles": self.ratio(&r.list_user_roles) >= TARGET_READ,
            "check_permission": self.ratio(&r.check_permission) >= TARGET_CHECK,
            "assign_ops_vs_commit": self.assign_ratio() >= TARGET_ASSIGN,
            "add_members_10k": self.add_members_target_applies()
                .then_some(r.add_members.done_seconds < TARGET_ADD_MEMBERS_SECONDS),
            "rss_idle": r.memory_idle.rss_mib < TARGET_IDLE_RSS_MIB,
            "rss_no_growth": self.rss_growth_target(),
        })
    }

    /// Resident memory after the last round minus after the second: the
    /// first round warms the caches, the pools and the allocator's arenas.
    fn rss_growth(&self) -> f64 {
        let rounds = &self.results.memory_rounds;
        match (rounds.get(1), rounds.last()) {
            (Some(warm), Some(last)) => last.rss_mib - warm.rss_mib,
            _ => 0.0,
        }
    }

    /// Whether memory stayed flat after the warm-up round; `None` with
    /// fewer than three rounds.
    fn rss_growth_target(&self) -> Option<bool> {
        (self.results.memory_rounds.len() > 2)
            .then(|| self.rss_growth() <= RSS_GROWTH_TOLERANCE_MIB)
    }

    /// Writes [`Report::json`] to `path`.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.json())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(())
    }
}

/// One table row: a baseline, or a figure with its baseline and the
/// minimum ratio to it.
fn row(out: &mut String, label: &str, stats: &Stats, against: Option<(&Stats, f64)>) {
    let (ratio, range, target) = match against {
        Some((baseline, min)) => {
            let ratio = ratio(stats.rps, baseline.rps);
            let [low, high] = slice_range(stats, baseline);
            (
                ratio,
                format!("{low:.2}–{high:.2}"),
                format!(">= {min:.1}x {}", verdict(ratio >= min)),
            )
        }
        None => (1.0, String::new(), "baseline".to_owned()),
    };
    let _ = writeln!(
        out,
        "| {label} | {:.0} | {ratio:.2}x | {range} | {target} | {:.2} | {:.2} | {} |",
        stats.rps, stats.p50_ms, stats.p99_ms, stats.errors
    );
}

/// The lowest and highest ratio of `stats` to `baseline` over the slices
/// they took turns in.
fn slice_range(stats: &Stats, baseline: &Stats) -> [f64; 2] {
    let ratios = stats
        .slice_rps
        .iter()
        .zip(&baseline.slice_rps)
        .map(|(&part, &whole)| round(ratio(part, whole)));
    let low = ratios.clone().fold(f64::INFINITY, f64::min);
    let high = ratios.fold(0.0, f64::max);
    if low.is_finite() {
        [low, high]
    } else {
        [0.0, 0.0]
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// `part / whole`, 0 when there is no whole.
fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole } else { 0.0 }
}

/// Three decimals are plenty for JSON.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
