//! `airlock bench hook`: the wall time of `airlock hook claude-code` for a typical command —
//! process start, reading the event, one decision from a running server, the answer —
//! against starting the same binary to print its version, interleaved in one run.

use crate::bench::{InProcess, now, percentile, verdict};
use anyhow::{Context, Result};
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;
use std::io::Write;
use std::process::{Command, ExitCode, Stdio};

#[derive(Args)]
pub struct HookBenchArgs {
    /// Invocations of each (after 10 of each to warm the page cache and the server).
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// The shell command the hook decides (a read an agent runs all day long).
    #[arg(long, default_value = "git status && ls -la")]
    command: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the binary once with `args`, `stdin` piped in; returns the wall time in ms and
/// its stdout, or why it failed.
fn once(exe: &std::path::Path, args: &[&str], stdin: &[u8]) -> Result<(f64, String)> {
    let t = now();
    let mut child = Command::new(exe)
        .args(args)
        .env_remove("AIRLOCK_URL")
        .env_remove("AIRLOCK_TOKEN")
        .env_remove("AIRLOCK_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin)?;
    }
    let out = child.wait_with_output()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((ms, String::from_utf8_lossy(&out.stdout).into_owned()))
}

pub async fn hook(args: HookBenchArgs) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let gate = InProcess::start("").await?;
    let config = gate.dir.path().join("hook.toml");
    std::fs::write(&config, "")?;
    let config = config.display().to_string();
    let event = json!({"session_id": "bench", "cwd": "/repo", "hook_event_name": "PreToolUse",
                       "tool_name": "Bash", "tool_input": {"command": args.command, "description": "bench"}})
    .to_string();
    let hook_args = [
        "hook",
        "claude-code",
        "--config",
        config.as_str(),
        "--url",
        gate.base.as_str(),
        "--token",
        gate.token.as_str(),
    ];
    let (mut hook_ms, mut start_ms) = (Vec::new(), Vec::new());
    let mut failed = 0;
    let mut decisions = std::collections::BTreeMap::<String, usize>::new();
    let bar = indicatif::ProgressBar::new((args.runs * 2 + 20) as u64);
    for i in 0..args.runs + 10 {
        // Blocking waits on a child, off the runtime's workers that serve the gate.
        let (e, a, ev) = (exe.clone(), hook_args.map(String::from), event.clone());
        let hooked = tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            once(&e, &a, ev.as_bytes())
        })
        .await?;
        let e = exe.clone();
        let started = tokio::task::spawn_blocking(move || once(&e, &["--version"], b"")).await?;
        bar.inc(2);
        let answer = hooked.and_then(|(ms, out)| {
            let v: serde_json::Value = serde_json::from_str(out.trim())
                .with_context(|| format!("the hook's answer is not JSON: {out}"))?;
            let d = v["hookSpecificOutput"]["permissionDecision"]
                .as_str()
                .map(str::to_string)
                .context("the hook's answer has no permissionDecision")?;
            Ok((ms, d))
        });
        match (answer, started) {
            (Ok((h, d)), Ok((s, _))) => {
                if i >= 10 {
                    hook_ms.push(h);
                    start_ms.push(s);
                    *decisions.entry(d).or_default() += 1;
                }
            }
            (h, s) => {
                failed += 1;
                for e in [h.err(), s.err()].into_iter().flatten() {
                    eprintln!("airlock bench hook: {e:#}");
                }
            }
        }
    }
    bar.finish_and_clear();
    let report = gate.finish().await?;
    for v in [&mut hook_ms, &mut start_ms] {
        v.sort_by(f64::total_cmp);
    }
    let (h50, h99, s50, s99) = (
        percentile(&hook_ms, 0.5),
        percentile(&hook_ms, 0.99),
        percentile(&start_ms, 0.5),
        percentile(&start_ms, 0.99),
    );
    let out = json!({
        "runs": args.runs, "command": args.command, "decisions": decisions,
        "hook": {"p50_ms": h50, "p99_ms": h99},
        "process_start": {"p50_ms": s50, "p99_ms": s99},
        "ratio_p50": h50 / s50.max(1e-9), "added_p50_ms": h50 - s50,
        "failed": failed, "journal_events": report.events, "journal_verified": report.ok(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_header(["what", "runs", "p50 ms", "p99 ms"]);
        t.add_row([
            format!("airlock hook claude-code `{}` (wall)", args.command),
            hook_ms.len().to_string(),
            format!("{h50:.2}"),
            format!("{h99:.2}"),
        ]);
        t.add_row([
            "airlock --version (process start)".to_string(),
            start_ms.len().to_string(),
            format!("{s50:.2}"),
            format!("{s99:.2}"),
        ]);
        println!("{t}");
        println!(
            "hook / process start: p50 {:.2}x (+{:.2} ms); decisions {}; journal {} events, chain {}",
            h50 / s50.max(1e-9),
            h50 - s50,
            decisions
                .iter()
                .map(|(d, n)| format!("{d} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            report.events,
            if report.ok() { "verified" } else { "BROKEN" }
        );
    }
    Ok(verdict(&report, &[("hook", failed)]))
}
