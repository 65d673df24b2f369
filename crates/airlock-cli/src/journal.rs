//! `airlock journal verify|show|export`.

use crate::{BadInput, DEFAULT_STORE};
use airlock_store::{EventQuery, Journal, SqliteJournal, StoreError};
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct StoreArg {
    /// The journal: a path or `sqlite://PATH`.
    #[arg(long, env = "AIRLOCK_STORE", default_value = DEFAULT_STORE)]
    pub store: String,
}

#[derive(Subcommand)]
pub enum JournalCmd {
    /// Recompute the hash chain and name the first broken link (exit code 1 if broken).
    Verify {
        #[command(flatten)]
        store: StoreArg,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show events, newest last.
    Show {
        #[command(flatten)]
        store: StoreArg,
        /// Show only the last N events.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only events of this kind (request, verdict, applied, reverted, …).
        #[arg(long)]
        kind: Option<String>,
        /// Only events about this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Print events as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Export every event.
    Export {
        #[command(flatten)]
        store: StoreArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// One JSON event per line.
    Jsonl,
}

async fn open(store: &str) -> Result<SqliteJournal> {
    SqliteJournal::open_read_only(store)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) | StoreError::Invalid(_) => BadInput(e.to_string()).into(),
            other => anyhow::Error::new(other),
        })
}

pub async fn journal(cmd: JournalCmd) -> Result<ExitCode> {
    match cmd {
        JournalCmd::Verify { store, json } => {
            let j = open(&store.store).await?;
            let report = j.verify().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "ok": report.ok(), "events": report.events, "head": report.head, "first_broken": report.first_broken,
                    }))?
                );
            } else if let Some(b) = &report.first_broken {
                println!(
                    "journal `{}`: BROKEN at event {}: {}",
                    store.store, b.seq, b.reason
                );
                println!(
                    "{} events before it verify; head {}",
                    report.events, report.head
                );
            } else {
                println!(
                    "journal `{}`: ok, {} events, head {}",
                    store.store, report.events, report.head
                );
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        JournalCmd::Show {
            store,
            limit,
            kind,
            agent,
            json,
        } => {
            let j = open(&store.store).await?;
            let kind = match kind {
                Some(k) => Some(
                    airlock_core::EventKind::parse(&k)
                        .ok_or_else(|| BadInput(format!("unknown event kind `{k}`")))?,
                ),
                None => None,
            };
            let mut events = j
                .read(EventQuery {
                    limit: Some(limit),
                    kind,
                    agent,
                    descending: true,
                    ..Default::default()
                })
                .await?;
            events.reverse();
            if json {
                let mut out = std::io::stdout().lock();
                for e in &events {
                    writeln!(out, "{}", serde_json::to_string(e)?)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = Table::new();
            t.load_style(UTF8_FULL_CONDENSED).set_header([
                "seq",
                "time (UTC)",
                "kind",
                "agent",
                "action",
                "change",
                "summary",
            ]);
            for e in &events {
                t.add_row([
                    e.seq.to_string(),
                    format_ts(e.ts),
                    e.kind.to_string(),
                    e.agent.clone().unwrap_or_default(),
                    e.action_id.clone().unwrap_or_default(),
                    e.change_id.clone().unwrap_or_default(),
                    summarize(&e.payload),
                ]);
            }
            println!("{t}");
            Ok(ExitCode::SUCCESS)
        }
        JournalCmd::Export {
            store,
            format: Format::Jsonl,
            output,
        } => {
            let j = open(&store.store).await?;
            let mut sink: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .map_err(|e| BadInput(format!("cannot write `{}`: {e}", p.display())))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut after = None;
            loop {
                let page = j
                    .read(EventQuery {
                        after_seq: after,
                        limit: Some(1000),
                        ..Default::default()
                    })
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.seq);
                for e in &page {
                    writeln!(sink, "{}", serde_json::to_string(e)?)?;
                }
            }
            sink.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS`, UTC.
pub(crate) fn format_ts(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn summarize(p: &serde_json::Value) -> String {
    let pick = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let s = if let Some(v) = pick("verdict") {
        let reasons: Vec<String> = p
            .get("reasons")
            .and_then(|r| r.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if reasons.is_empty() {
            v
        } else {
            format!("{v}: {}", reasons.join(", "))
        }
    } else if let Some(plan) = p
        .get("plan")
        .and_then(|pl| pl.get("summary"))
        .and_then(|s| s.as_str())
    {
        plan.to_string()
    } else if let Some(e) = pick("error") {
        format!("error: {e}")
    } else {
        pick("summary")
            .or_else(|| pick("reason"))
            .or_else(|| pick("rule"))
            .unwrap_or_else(|| p.to_string())
    };
    if s.chars().count() > 90 {
        format!("{}…", s.chars().take(89).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_render_in_utc() {
        assert_eq!(super::format_ts(1_795_971_300_000), "2026-11-29 16:55:00");
        assert_eq!(super::format_ts(0), "1970-01-01 00:00:00");
    }
}
