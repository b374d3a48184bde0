//! Runs `rolekeeper-bench` end to end, as the README does, with a tiny data
//! set and one-second phases: against the real server binary, on SQLite
//! with the read answers undecoded (the default) and on PostgreSQL with
//! them decoded. Checks that the JSON holds every figure the benchmark
//! promises, measured by loads without a single error. Without
//! `ROLEKEEPER_TEST_POSTGRES_URL` the PostgreSQL run is skipped, unless
//! `REQUIRE_POSTGRES=1`, which makes that a failure.

mod process_support;

use serde_json::Value;
use std::process::Command;

/// The fixed keys of the JSON file that hold one number each.
const FIGURES: [&str; 9] = [
    "ratio_get_role",
    "ratio_list_user_roles",
    "ratio_check_permission",
    "ratio_assign_ops_vs_commit",
    "add_members_10k_seconds",
    "rss_idle_mib",
    "rss_load_mib",
    "rss_peak_mib",
    "rss_growth_mib",
];

/// The measured phases, as the JSON's `phases` names them.
const PHASES: [&str; 6] = [
    "health_check",
    "get_role",
    "list_user_roles",
    "check_permission",
    "raw_commit",
    "assign_ops",
];

/// Runs the benchmark with `extra` flags; returns its JSON and its table.
fn run_bench(extra: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let json = dir.path().join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_rolekeeper-bench"))
        .args([
            "--orgs",
            "2",
            "--users",
            "20",
            "--roles",
            "4",
            "--permissions",
            "3",
            "--roles-per-user",
            "2",
            "--bulk-users",
            "200",
            "--clients",
            "4",
            "--channels",
            "2",
            "--duration",
            "1",
            "--slices",
            "1",
            "--warmup",
            "0",
            "--rounds",
            "2",
            "--server-bin",
            env!("CARGO_BIN_EXE_rolekeeper"),
            "--json",
        ])
        .arg(&json)
        .args(extra)
        .output()
        .expect("run rolekeeper-bench");
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "rolekeeper-bench failed: {}\n{table}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("the JSON file");
    (serde_json::from_str(&text).expect("valid JSON"), table)
}

/// Checks every figure and phase of one run's JSON.
fn check_report(report: &Value, backend: &str, decoded: bool) {
    for key in FIGURES {
        let figure = report[key].as_f64();
        assert!(
            figure.is_some_and(f64::is_finite),
            "{key} is {:?}",
            report[key]
        );
    }
    assert!(report["ratio_get_role"].as_f64() > Some(0.0));
    assert!(report["add_members_10k_seconds"].as_f64() > Some(0.0));
    assert_eq!(report["rss_rounds_mib"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["backend"], backend);
    assert_eq!(report["decode_answers"], decoded);
    assert_eq!(report["seed"]["users"], 20);
    for phase in PHASES {
        let stats = &report["phases"][phase];
        assert!(stats["rps"].as_f64() > Some(0.0), "{phase}: {stats}");
        assert_eq!(stats["errors"], 0, "{phase}: {stats}");
    }
    assert_eq!(report["add_members"]["users"], 200);
}

#[test]
fn the_benchmark_reports_every_figure_on_sqlite() {
    let (report, table) = run_bench(&[]);
    check_report(&report, "sqlite", false);
    assert!(table.contains("read answers undecoded"), "{table}");
    assert!(table.contains("| ListUserRoles |"), "{table}");
}

#[test]
fn the_benchmark_reports_every_figure_on_postgres_with_answers_decoded() {
    let Some(url) = process_support::postgres_admin_url() else {
        return;
    };
    let (report, table) = run_bench(&["--database-url", &url, "--decode-answers"]);
    check_report(&report, "postgres", true);
    assert!(table.contains("read answers decoded"), "{table}");
}
