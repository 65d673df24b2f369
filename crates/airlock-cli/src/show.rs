//! `airlock show CHANGE`: a change's timeline, from a running server (`--url`) or from the
//! local store, as a headline and a table of what happened, relative to the apply.

use crate::BadInput;
use crate::serve::StoreArgs;
use airlock_store::StoreError;
use anyhow::Result;
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;
use std::process::ExitCode;

#[derive(Args)]
pub struct ShowArgs {
    /// The change id (`chg_…`).
    change: String,
    /// A running server to ask, instead of reading the local store.
    #[arg(long, env = "AIRLOCK_URL")]
    url: Option<String>,
    /// A bearer token for `--url`: an operator's, or that of the agent that made the change.
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Without `--url`: the local store, opened read-only.
    #[command(flatten)]
    store: StoreArgs,
    /// Print the timeline as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn show(args: ShowArgs) -> Result<ExitCode> {
    let timeline = match &args.url {
        Some(url) => {
            if args.token.as_deref().is_none_or(|t| t.trim().is_empty()) {
                return Err(BadInput(
                    "no token: pass --token or set AIRLOCK_TOKEN (an operator's, or the agent's that made the change)".into(),
                )
                .into());
            }
            crate::remote::Client::new(url, args.token.clone())?
                .get(&format!("/v1/changes/{}/timeline", args.change))
                .await?
        }
        None => {
            let store = args.store.location()?;
            let journal = airlock_store::open_read_only(&store)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) | StoreError::Invalid(_) => {
                        BadInput(e.to_string()).into()
                    }
                    other => anyhow::Error::new(other),
                })?;
            airlock_server::timeline::timeline(journal.as_ref(), &args.change)
                .await?
                .map(serde_json::to_value)
                .transpose()?
                .ok_or_else(|| {
                    BadInput(format!(
                        "unknown change `{}` in the store `{store}`",
                        args.change
                    ))
                })?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&timeline)?);
    } else {
        println!("{}", render(&timeline));
    }
    Ok(ExitCode::SUCCESS)
}

/// The headline and the table.
fn render(t: &Value) -> String {
    let s = |k: &str| t[k].as_str().unwrap_or("?");
    let entries = t["entries"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    // Times are shown relative to the apply; a change that never applied counts from its
    // first entry.
    let origin = t["applied_at"]
        .as_i64()
        .or_else(|| entries.first().and_then(|e| e["ts"].as_i64()))
        .unwrap_or(0);
    let mut out = format!(
        "change {} ({}) by {}: {}\n",
        s("change_id"),
        s("action_id"),
        s("agent"),
        s("status")
    );
    let mut when = vec![match t["applied_at"].as_i64() {
        Some(a) => format!("applied {} UTC", utc(a)),
        None => "never applied".to_string(),
    }];
    for (key, word) in [
        ("detected_at", "detected"),
        ("reverted_at", "reverted"),
        ("settled_at", "settled"),
        ("unjudged_at", "ended unjudged (never judged on data)"),
    ] {
        if let Some(ms) = t[key].as_i64() {
            when.push(format!("{word} {}", relative(ms - origin)));
        }
    }
    if let Some(ttm) = t["time_to_mitigate_ms"].as_i64() {
        when.push(format!("time to mitigate {ttm} ms"));
    }
    out.push_str(&when.join(", "));
    out.push('\n');

    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(["time", "kind", "summary"]);
    for row in rows(entries, origin) {
        table.add_row([row.time, row.kind, row.summary]);
    }
    out.push_str(&table.to_string());
    out
}

struct Row {
    time: String,
    kind: String,
    summary: String,
}

/// One row per entry, except that a service's evaluations with the same judgement in a row
/// (one per poll, so hundreds over a long bake) fold into one row with their count.
fn rows(entries: &[Value], origin: i64) -> Vec<Row> {
    struct Run {
        row: usize,
        judgement: String,
        first: i64,
        count: usize,
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut runs: std::collections::BTreeMap<String, Run> = Default::default();
    for e in entries {
        let ts = e["ts"].as_i64().unwrap_or(origin);
        let kind = e["kind"].as_str().unwrap_or("?").to_string();
        let summary = e["summary"].as_str().unwrap_or("").to_string();
        if kind != "evaluation" {
            // An event ends every run: what follows it is a new stretch.
            runs.clear();
            rows.push(Row {
                time: relative(ts - origin),
                kind,
                summary,
            });
            continue;
        }
        let service = e["detail"]["service"].as_str().unwrap_or("").to_string();
        let judgement = e["detail"]["judgement"].as_str().unwrap_or("").to_string();
        match runs.get_mut(&service) {
            Some(run) if run.judgement == judgement => {
                run.count += 1;
                if let Some(row) = rows.get_mut(run.row) {
                    row.time = format!(
                        "{} … {}",
                        relative(run.first - origin),
                        relative(ts - origin)
                    );
                    row.summary = format!("{summary} (×{}, the last shown)", run.count);
                }
            }
            _ => {
                runs.insert(
                    service,
                    Run {
                        row: rows.len(),
                        judgement,
                        first: ts,
                        count: 1,
                    },
                );
                rows.push(Row {
                    time: relative(ts - origin),
                    kind,
                    summary,
                });
            }
        }
    }
    rows
}

/// `+1.234s`, `-0.250s`.
fn relative(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}s", abs / 1000, abs % 1000)
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS.mmm`, UTC.
fn utc(ms: i64) -> String {
    format!(
        "{}.{:03}",
        crate::journal::format_ts(ms),
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_relative_to_the_apply() {
        assert_eq!(relative(1_234), "+1.234s");
        assert_eq!(relative(0), "+0.000s");
        assert_eq!(relative(-250), "-0.250s");
        assert_eq!(utc(1_795_971_300_042), "2026-11-29 16:55:00.042");
    }

    #[test]
    fn an_unjudged_change_says_so_in_its_headline() {
        let t = json!({"change_id": "chg_u", "action_id": "act_u", "agent": "bot",
                       "status": "unjudged", "applied_at": 0, "settled_at": null,
                       "unjudged_at": 60_000, "entries": []});
        let out = render(&t);
        let head: Vec<&str> = out.lines().take(2).collect();
        assert_eq!(head[0], "change chg_u (act_u) by bot: unjudged");
        assert!(
            head[1].ends_with(", ended unjudged (never judged on data) +60.000s"),
            "{out}"
        );
        assert!(!head[1].contains("settled"), "{out}");
    }

    #[test]
    fn a_run_of_the_same_judgement_folds_into_one_row() {
        let eval = |ts: i64, service: &str, judgement: &str| {
            json!({"ts": ts, "seq": null, "kind": "evaluation",
                   "summary": format!("judge {service}: {judgement} @{ts}"),
                   "detail": {"service": service, "judgement": judgement}})
        };
        let entries = [
            json!({"ts": 0, "seq": 3, "kind": "applied", "summary": "applied: x", "detail": {}}),
            eval(1_000, "web", "pass"),
            eval(1_000, "api", "pass"),
            eval(2_000, "web", "pass"),
            eval(2_000, "api", "pass"),
            eval(3_000, "web", "breach"),
            json!({"ts": 3_000, "seq": 4, "kind": "breach", "summary": "breach on web", "detail": {}}),
            eval(4_000, "api", "pass"),
        ];
        let got: Vec<(String, String)> = rows(&entries, 0)
            .into_iter()
            .map(|r| (r.time, r.summary))
            .collect();
        let want = [
            ("+0.000s", "applied: x"),
            (
                "+1.000s … +2.000s",
                "judge web: pass @2000 (×2, the last shown)",
            ),
            (
                "+1.000s … +2.000s",
                "judge api: pass @2000 (×2, the last shown)",
            ),
            ("+3.000s", "judge web: breach @3000"),
            ("+3.000s", "breach on web"),
            ("+4.000s", "judge api: pass @4000"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }
}
