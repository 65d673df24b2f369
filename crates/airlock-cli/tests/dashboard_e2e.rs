//! The dashboard in a real browser: `airlock serve` (the real binary, on a free loopback
//! port) and Playwright (npm `playwright-core`) driving Debian's headless `chromium`, from
//! `tests/dashboard/dashboard.mjs`. `scripts/test.sh` installs both; without them this test
//! fails and says how to install them. Screenshots of every page land in
//! `target/dashboard-screenshots` (or `$AIRLOCK_SCREENSHOTS`).
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the browser test and its `node_modules` live.
fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard")
}

/// The chromium to drive: `$CHROMIUM`, else Debian's.
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn check_tools() {
    let missing_node = Command::new("node").arg("--version").output().is_err();
    let missing_pw = !suite().join("node_modules/playwright-core").is_dir();
    let missing_chromium = !Path::new(&chromium()).exists();
    assert!(
        !(missing_node || missing_pw || missing_chromium),
        "the dashboard's browser test needs Node.js, playwright-core and chromium: run \
         `bash scripts/test.sh` (or `apt-get install chromium nodejs npm` and \
         `npm ci --prefix crates/airlock-cli/tests/dashboard`); missing: {}{}{}",
        if missing_node { "node " } else { "" },
        if missing_pw { "playwright-core " } else { "" },
        if missing_chromium { "chromium" } else { "" },
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_watch_approve_revert_freeze_and_undo_in_the_browser() {
    check_tools();
    let env = Env::new(
        WORLD,
        "[approvals]\ntwo_person_critical = true\n\n[dashboard]\nreports_dir = 'reports'\n",
        3,
    )
    .await;
    let store = env.store();
    // A second operator, for the two-person rule.
    let op2 = env
        .airlock(&["token", "create", "--operator", "op2", "--store", &store])
        .await
        .code(0)
        .stdout
        .trim()
        .to_string();
    // A proving-ground report for the reports page, written by `airlock prove`.
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/no-fault-control.toml");
    let report = env.dir.path().join("reports/no-fault-control.html");
    env.airlock(&[
        "prove",
        &scenario.display().to_string(),
        "--mode",
        "both",
        "--seeds",
        "1",
        "--report",
        &report.display().to_string(),
    ])
    .await
    .code(0);

    let mut server = env.serve(&[]).await;
    let shots = std::env::var("AIRLOCK_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots")
        });
    let out = tokio::process::Command::new("node")
        .arg(suite().join("dashboard.mjs"))
        .env("AIRLOCK_URL", &server.url)
        .env("AIRLOCK_OP", &env.op)
        .env("AIRLOCK_OP2", &op2)
        .env("AIRLOCK_BOT", &env.bot)
        .env("AIRLOCK_SCREENSHOTS", &shots)
        .env("CHROMIUM", chromium())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    let log = server.log();
    server.stop().await;
    assert!(
        out.status.success(),
        "the browser test failed\n--- its output\n{stdout}\n--- its errors\n{stderr}\n--- server log\n{log}"
    );
    assert!(stdout.contains("steps passed"), "{stdout}");
}
