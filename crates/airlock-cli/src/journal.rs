//! `airlock journal verify|show|export|backup`, and the one readable line per event that
//! the journal table and `airlock tail` show.

use crate::BadInput;
use crate::serve::StoreArgs;
use airlock_core::EventKind;
use airlock_store::{
    AuditOptions, CheckpointSigner, EventQuery, Journal, PublicKey, SqliteJournal, StoreError,
    audit_export, checkpoints_in_export,
};
use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum JournalCmd {
    /// Recompute the hash chain over the exact stored bytes, check every principal and
    /// change row against it and every checkpoint; name the first broken link (exit code 1
    /// if anything fails).
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Check every checkpoint's signature with this public key (`PATH.pub` from
        /// `airlock keygen`; repeat it for keys used before). Fails unless at least one
        /// checkpoint verifies and every one does.
        #[arg(long = "public-key", value_name = "PATH")]
        public_key: Vec<PathBuf>,
        /// Verify an export (`airlock journal export`) instead of the store.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// Compare with the checkpoints of an earlier export: each must be signed by the
        /// key and match this journal at the head it signed, so a journal cut short or
        /// rewritten since shows.
        #[arg(long, value_name = "FILE", requires = "public_key")]
        checkpoints: Option<PathBuf>,
    },
    /// Show events, newest last.
    Show {
        #[command(flatten)]
        store: StoreArgs,
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
    /// Export every event row exactly as stored (checkpoints included), one JSON object per
    /// line; `airlock journal verify --export FILE --public-key KEY.pub` checks it offline.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Copy the journal to a new file while it is in use (a running server included), then
    /// verify the copy's hash chain (exit code 1 if it is broken).
    ///
    /// Uses SQLite's `VACUUM INTO`: one consistent snapshot that includes what is still in
    /// the write-ahead log, which copying the `.db` file alone would miss.
    Backup {
        /// The backup file; it must not exist yet.
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Print `{"store", "backup", "ok", "events", "head", "first_broken"}`.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// One JSON event per line.
    Jsonl,
}

async fn open(store: &str) -> Result<std::sync::Arc<dyn Journal>> {
    airlock_store::open_read_only(store)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) | StoreError::Invalid(_) => BadInput(e.to_string()).into(),
            other => anyhow::Error::new(other),
        })
}

pub async fn journal(cmd: JournalCmd) -> Result<ExitCode> {
    match cmd {
        JournalCmd::Verify {
            store,
            json,
            public_key,
            export,
            checkpoints,
        } => verify(store, json, public_key, export, checkpoints).await,
        JournalCmd::Show {
            store,
            limit,
            kind,
            agent,
            json,
        } => {
            let j = open(&store.location()?).await?;
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
                    summarize(e.kind, &e.payload),
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
            let j = open(&store.location()?).await?;
            let mut sink: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .map_err(|e| BadInput(format!("cannot write `{}`: {e}", p.display())))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut after = 0;
            loop {
                let page = j.export_rows(after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for e in &page {
                    writeln!(sink, "{}", serde_json::to_string(e)?)?;
                }
            }
            sink.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        JournalCmd::Backup { file, store, json } => {
            let store = store.location()?;
            let report = backup(&store, &file).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "store": store, "backup": file.display().to_string(), "ok": report.ok(),
                        "events": report.events, "head": report.head, "first_broken": report.first_broken,
                    }))?
                );
            } else if let Some(b) = &report.first_broken {
                println!(
                    "backup `{}` of `{store}`: written, but its chain is BROKEN at event {}: {} (the store's own chain is broken: run `airlock journal verify`)",
                    file.display(),
                    b.seq,
                    b.reason
                );
            } else {
                println!(
                    "backup `{}` of `{store}`: ok, {} events, head {}",
                    file.display(),
                    report.events,
                    report.head
                );
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// `airlock journal verify`: a store or an export, with or without keys.
async fn verify(
    store: StoreArgs,
    json: bool,
    public_keys: Vec<PathBuf>,
    export: Option<PathBuf>,
    checkpoints: Option<PathBuf>,
) -> Result<ExitCode> {
    let mut opts = AuditOptions::default();
    for p in &public_keys {
        opts.keys
            .push(PublicKey::from_file(p).map_err(|e| BadInput(e.to_string()))?);
    }
    if let Some(f) = &checkpoints {
        let file = std::fs::File::open(f)
            .map_err(|e| BadInput(format!("cannot read `{}`: {e}", f.display())))?;
        opts.external = checkpoints_in_export(std::io::BufReader::new(file))
            .map_err(|e| BadInput(format!("`{}`: {e}", f.display())))?;
    }
    let (what, audit) = match &export {
        Some(f) => {
            let file = std::fs::File::open(f)
                .map_err(|e| BadInput(format!("cannot read `{}`: {e}", f.display())))?;
            let audit = audit_export(std::io::BufReader::new(file), opts)?;
            (format!("export `{}`", f.display()), audit)
        }
        None => {
            let store = store.location()?;
            let j = open(&store).await?;
            (format!("journal `{store}`"), j.audit(opts).await?)
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": audit.ok(), "events": audit.chain.events, "head": audit.chain.head,
                "first_broken": audit.chain.first_broken, "legacy_events": audit.legacy_events,
                "rows_checked": if export.is_some() { None } else { Some(audit.rows_checked) },
                "rows_unproven": audit.rows_unproven, "checkpoints": audit.checkpoints,
                "signed": audit.signed, "last_signed": audit.last_signed,
                "problems": audit.problems,
            }))?
        );
    } else {
        print!("{}", verify_text(&what, &audit, export.is_some()));
    }
    Ok(if audit.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The readable report of `journal verify`.
fn verify_text(what: &str, a: &airlock_store::Audit, is_export: bool) -> String {
    let mut out = String::new();
    let c = &a.chain;
    match &c.first_broken {
        Some(b) => {
            out.push_str(&format!(
                "{what}: BROKEN at event {}: {}
",
                b.seq, b.reason
            ));
            out.push_str(&format!(
                "{} events before it verify; head {}
",
                c.events, c.head
            ));
        }
        None if a.problems.is_empty() => out.push_str(&format!(
            "{what}: ok, {} events, head {}
",
            c.events, c.head
        )),
        None => out.push_str(&format!(
            "{what}: FAILED: the chain holds ({} events, head {}), but:
",
            c.events, c.head
        )),
    }
    for p in &a.problems {
        match p.seq {
            Some(s) => out.push_str(&format!("  - event {s}: {}\n", p.reason)),
            None => out.push_str(&format!("  - {}\n", p.reason)),
        }
    }
    if a.legacy_events > 0 {
        out.push_str(&format!(
            "  {} events predate format 2: their payloads are proven by meaning, not byte for byte\n",
            a.legacy_events
        ));
    }
    if is_export {
        out.push_str("  principals and changes are not in an export: verify the store for them\n");
    } else {
        out.push_str(&format!(
            "  {} principal and change rows checked against the chain",
            a.rows_checked
        ));
        if a.rows_unproven > 0 {
            out.push_str(&format!(
                "; {} last written before row digests cannot be proven (re-key or update them)",
                a.rows_unproven
            ));
        }
        out.push('\n');
    }
    if !a.keys_given {
        out.push_str(&format!(
            "  {} checkpoints; signatures not checked: pass --public-key to prove nobody rewrote the chain\n",
            a.checkpoints
        ));
    } else if let Some(l) = &a.last_signed {
        let after = (c.events as i64 - l.head_seq - 1).max(0);
        out.push_str(&format!(
            "  {} signed checkpoints verify under key {}; the newest covers event {} (signed {} UTC); {after} events after it are not signed yet\n",
            a.signed,
            l.key_id,
            l.head_seq,
            format_ts(l.signed_at)
        ));
    }
    out
}

/// `airlock keygen --out PATH`: a new ed25519 key pair for signing checkpoints, from the
/// OS's random source. The private key goes to `PATH` (mode 0600), the public key to
/// `PATH.pub`; neither is ever overwritten.
pub fn keygen(out: &Path) -> Result<ExitCode> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut public = out.as_os_str().to_owned();
    public.push(".pub");
    let public = PathBuf::from(public);
    for p in [out, public.as_path()] {
        if p.exists() {
            return Err(BadInput(format!(
                "`{}` exists: a key is never overwritten (move it away or pick another path)",
                p.display()
            ))
            .into());
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| anyhow::anyhow!("cannot read the system's random source: {e}"))?;
    let signer = CheckpointSigner::from_seed(&seed);
    seed.fill(0);
    let write = |path: &Path, mode: u32, text: &str| -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| BadInput(format!("cannot write `{}`: {e}", path.display())))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write `{}`", path.display()))
    };
    write(out, 0o600, &signer.secret_text())?;
    let key = signer.public_key();
    if let Err(e) = write(&public, 0o644, &format!("{}\n", key.text())) {
        std::fs::remove_file(out).ok();
        return Err(e);
    }
    println!("{}", key.text());
    eprintln!(
        "wrote the private key to `{}` (mode 0600; keep it outside the store) and the public \
         key to `{}`; key id {}\nsign checkpoints with `[journal] signing_key = \"{}\"`; verify \
         with `airlock journal verify --public-key {}`",
        out.display(),
        public.display(),
        key.key_id(),
        out.display(),
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The file a `--store` location names (`PATH`, `sqlite://PATH`, `sqlite:PATH`).
fn store_file(store: &str) -> &str {
    let s = store.trim();
    s.strip_prefix("sqlite://")
        .or_else(|| s.strip_prefix("sqlite:"))
        .unwrap_or(s)
}

/// Writes a consistent copy of the journal at `store` to `file` with SQLite's online
/// `VACUUM INTO` (readers and the writer go on meanwhile), then verifies the copy.
///
/// The copy is written beside `file` under a `.partial` name and renamed when complete, so
/// an interrupted backup never looks like a finished one.
async fn backup(store: &str, file: &Path) -> Result<airlock_store::VerifyReport> {
    use sqlx::{ConnectOptions, Connection};
    if airlock_store::is_shared(store) {
        return Err(BadInput(
            "a PostgreSQL journal is backed up with PostgreSQL's own tools (pg_dump, or a base \
             backup with WAL archiving); see docs/operations.md. `journal export` writes a \
             portable copy of its events from any backend"
                .into(),
        )
        .into());
    }
    // Opening it as the journal first gives the journal's own errors: no such file, not a
    // journal, an in-memory store.
    let source = open(store).await?;
    drop(source);
    if file.exists() {
        return Err(BadInput(format!(
            "`{}` exists: back up to a new file (a backup never overwrites one)",
            file.display()
        ))
        .into());
    }
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}` for the backup", dir.display()))?;
    }
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.is_file() {
        // Left by an interrupted backup to the same file.
        std::fs::remove_file(&partial)
            .with_context(|| format!("cannot remove the stale `{}`", partial.display()))?;
    }
    let target = partial
        .to_str()
        .ok_or_else(|| BadInput(format!("`{}` is not a UTF-8 path", file.display())))?
        .to_string();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(store_file(store))
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("cannot open the store `{store}` to back it up"))?;
    let copied = sqlx::query("VACUUM INTO ?")
        .bind(&target)
        .execute(&mut conn)
        .await;
    let closed = conn.close().await;
    if let Err(e) = copied {
        // Nothing half-written is left behind.
        if partial.is_file() {
            std::fs::remove_file(&partial).ok();
        }
        return Err(anyhow::Error::new(e).context(format!(
            "cannot back up the store `{store}` to `{}`",
            file.display()
        )));
    }
    closed.with_context(|| format!("cannot close the store `{store}`"))?;
    let report = SqliteJournal::open_read_only(&target)
        .await
        .with_context(|| format!("cannot open the backup `{}`", partial.display()))?
        .verify()
        .await
        .with_context(|| format!("cannot verify the backup `{}`", partial.display()))?;
    std::fs::rename(&partial, file).with_context(|| {
        format!(
            "cannot rename `{}` to `{}`",
            partial.display(),
            file.display()
        )
    })?;
    Ok(report)
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

/// One readable line for an event of `kind`, at most 90 characters: what `journal show`
/// and `airlock tail` print. Every kind has its own wording, so no event reads as raw JSON.
pub fn summarize(kind: EventKind, p: &Value) -> String {
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
    let list = |k: &str| -> Vec<&str> {
        p.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let value = |k: &str| {
        p.get(k)
            .and_then(Value::as_f64)
            .map_or("missing".to_string(), |v| format!("{v:.4}"))
    };
    let with = |head: String, tail: &str| {
        if tail.is_empty() {
            head
        } else {
            format!("{head}: {tail}")
        }
    };
    let line = match kind {
        EventKind::Request => {
            let req = p.get("request").unwrap_or(&Value::Null);
            let field = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or_default();
            let what = format!("{} {}", field("verb"), field("target"));
            match p
                .get("plan")
                .and_then(|pl| pl.get("summary"))
                .and_then(Value::as_str)
            {
                _ if !s("error").is_empty() => format!("{what}: refused: {}", s("error")),
                Some(plan) => plan.to_string(),
                None => what,
            }
        }
        EventKind::Verdict => {
            let mut line = with(s("verdict").to_string(), &list("reasons").join(", "));
            if let Some(by) = p.get("approved_by").and_then(Value::as_str) {
                // `operator:approval_id`; names never hold a colon.
                line.push_str(&format!(
                    " (approved by {})",
                    by.split(':').next().unwrap_or(by)
                ));
            }
            line
        }
        EventKind::Approval => {
            let outcome = s("outcome");
            let mut head = match (s("decision"), outcome) {
                (_, "expired") => "expired: no operator answered in time".to_string(),
                ("approve", _) => format!("approved by {}", s("by")),
                ("deny", _) => format!("denied by {}", s("by")),
                (_, o) if !o.is_empty() => o.to_string(),
                (decision, _) => format!("{decision} by {}", s("by")),
            };
            if matches!(s("decision"), "approve" | "deny")
                && !matches!(outcome, "" | "approved" | "denied" | "expired")
            {
                head.push_str(&format!(" ({outcome})"));
            }
            match s("reason") {
                // The proving ground's approver says who it is in its reason.
                r if r.starts_with("approved by") || r.starts_with("denied by") => r.to_string(),
                r => with(head, r),
            }
        }
        EventKind::Applied => {
            let mut line = s("summary").to_string();
            if let Some(bake) = p.get("bake_s").and_then(Value::as_u64) {
                line.push_str(&format!("; baking {bake} s"));
            }
            line
        }
        EventKind::Applying => format!("applying: {}", s("summary")),
        EventKind::ApplyFailed => with(format!("apply failed at {}", s("stage")), s("error")),
        EventKind::Unjudged => with("bake ended unjudged".to_string(), s("reason")),
        EventKind::Reverting => with("reverting".to_string(), s("reason")),
        EventKind::Takeover => format!(
            "taken over by replica {} from replica {} ({})",
            s("owner"),
            s("from"),
            s("reason")
        ),
        EventKind::Checkpoint => format!(
            "checkpoint signed at seq {}",
            p.get("head_seq").and_then(Value::as_i64).unwrap_or(0)
        ),
        EventKind::Settled => {
            let mut line = format!(
                "settled after {} polls",
                p.get("polls").and_then(Value::as_u64).unwrap_or(0)
            );
            if p.get("held_for_missing_data").and_then(Value::as_bool) == Some(true) {
                line.push_str(", held open for missing data");
            }
            line
        }
        EventKind::Breach => format!(
            "{} on {} (value {})",
            s("rule"),
            s("service"),
            value("value")
        ),
        EventKind::Reverted => match s("reason") {
            "" => format!("reverted by {}", s("by")),
            r => r.to_string(),
        },
        EventKind::NeedsAttention => with(format!("needs attention: {}", s("reason")), s("error")),
        EventKind::RevertFailed => with(format!("revert failed: {}", s("reason")), s("error")),
        EventKind::Breaker => match s("state") {
            "open" => s("reason").to_string(),
            "reset" => format!("breaker reset by {}", s("by")),
            other => format!("breaker {other}"),
        },
        EventKind::Killswitch => {
            let on = p.get("on").and_then(Value::as_bool) == Some(true);
            format!(
                "kill switch {} by {}",
                if on { "on" } else { "off" },
                s("by")
            )
        }
        EventKind::Agent => {
            let who = format!("{} `{}`", s("kind"), s("name"));
            match s("action") {
                "token_issued" => format!("{who}: token issued"),
                "token_revoked" => format!("{who}: token revoked by {}", s("by")),
                "" => format!("{who} registered"),
                other => format!("{who}: {}", other.replace('_', " ")),
            }
        }
        EventKind::Alert => {
            let head = format!("alert {} {} → {}", s("alert"), s("status"), s("receiver"));
            let attempts = p.get("attempts").and_then(Value::as_u64).unwrap_or(0);
            match s("delivery") {
                "queued" => format!("{head}: queued"),
                "delivered" => format!("{head}: delivered after {attempts} attempt(s)"),
                "retrying" => with(
                    format!("{head}: attempt {attempts} failed, retrying"),
                    s("error"),
                ),
                "given_up" => with(
                    format!("{head}: NOT DELIVERED, given up after {attempts} attempt(s)"),
                    s("error"),
                ),
                "superseded" => format!("{head}: superseded, not sent"),
                // Journals from before the outbox: one event per attempt.
                _ if p.get("ok").and_then(Value::as_bool) == Some(false) => {
                    format!("{head}, not delivered: {}", s("error"))
                }
                _ => head,
            }
        }
        EventKind::Ran => {
            let req = p.get("request").unwrap_or(&Value::Null);
            let field = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or_default();
            let mut line = format!(
                "{} {} ran at the agent, {}",
                field("verb"),
                field("target"),
                match p.get("succeeded").and_then(Value::as_bool) {
                    Some(true) => "succeeded",
                    Some(false) => "failed",
                    None => "outcome unknown",
                }
            );
            if let Some(apr) = p.get("answered_hold").and_then(Value::as_str) {
                line.push_str(&format!("; answered hold {apr} at the prompt"));
            }
            line
        }
        EventKind::Suspects => {
            let suspects: Vec<String> = p
                .get("suspects")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            let f = |k: &str| x.get(k).and_then(Value::as_str).unwrap_or("?");
                            format!("{} by {}", f("change_id"), f("agent"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{} regressed after settling, {} (value {}); suspects: {}",
                s("service"),
                s("rule"),
                value("value"),
                if suspects.is_empty() {
                    "none".to_string()
                } else {
                    suspects.join(", ")
                }
            )
        }
    };
    // Command lines may hold line breaks; a table cell and a tail line are one line.
    let flat = line.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 90 {
        format!("{}…", flat.chars().take(89).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_render_in_utc() {
        assert_eq!(super::format_ts(1_795_971_300_000), "2026-11-29 16:55:00");
        assert_eq!(super::format_ts(0), "1970-01-01 00:00:00");
    }

    /// Each kind with a payload shaped as the gate, the bake, the alerter and the proving
    /// ground write it. `summarize` matches every kind without a fallback, so a new kind
    /// does not compile until it has its own line.
    #[test]
    fn every_event_kind_reads_as_one_line_not_json() {
        let cases = [
            (
                EventKind::Request,
                json!({"request": {"verb": "scale", "target": "sim:service/search"}, "plan": {"summary": "scale sim:service/search 10 → 50"}, "risk": "medium"}),
                "scale sim:service/search 10 → 50",
            ),
            (
                EventKind::Request,
                json!({"request": {"verb": "scale", "target": "sim:service/nope"}, "error": "unknown service `nope`"}),
                "scale sim:service/nope: refused: unknown service `nope`",
            ),
            (
                EventKind::Verdict,
                json!({"verdict": "hold", "reasons": ["capacity-step-budget"], "details": []}),
                "hold: capacity-step-budget",
            ),
            (
                EventKind::Verdict,
                json!({"verdict": "allow", "reasons": [], "approved_by": "alice:apr_1"}),
                "allow (approved by alice)",
            ),
            (
                EventKind::Approval,
                json!({"approval_id": "apr_1", "decision": "approve", "by": "alice", "reason": "looks fine", "outcome": "approved"}),
                "approved by alice: looks fine",
            ),
            (
                EventKind::Approval,
                json!({"approval_id": "apr_1", "decision": "deny", "by": "timeout", "outcome": "expired"}),
                "expired: no operator answered in time",
            ),
            (
                EventKind::Approval,
                json!({"decision": "deny", "by": "approver", "reason": "denied by the scenario's approver", "outcome": "denied"}),
                "denied by the scenario's approver",
            ),
            (
                EventKind::Applied,
                json!({"plan_hash": "h", "summary": "deploy sim:service/web", "watch": ["web"], "bake_s": 300}),
                "deploy sim:service/web; baking 300 s",
            ),
            (
                EventKind::ApplyFailed,
                json!({"stage": "apply", "error": "provider unavailable"}),
                "apply failed at apply: provider unavailable",
            ),
            (
                EventKind::Settled,
                json!({"polls": 12, "held_for_missing_data": true}),
                "settled after 12 polls, held open for missing data",
            ),
            (
                EventKind::Breach,
                json!({"service": "web", "rule": "availability >= 0.999", "value": 0.92}),
                "availability >= 0.999 on web (value 0.9200)",
            ),
            (
                EventKind::Reverted,
                json!({"reason": "bake breach on `web`", "by": "airlock"}),
                "bake breach on `web`",
            ),
            (
                EventKind::NeedsAttention,
                json!({"reason": "reverted by op", "error": "conflict: replicas moved on"}),
                "needs attention: reverted by op: conflict: replicas moved on",
            ),
            (
                EventKind::RevertFailed,
                json!({"reason": "bake breach", "error": "timeout"}),
                "revert failed: bake breach: timeout",
            ),
            (
                EventKind::Breaker,
                json!({"state": "open", "reason": "2 reverts within 3600 s"}),
                "2 reverts within 3600 s",
            ),
            (
                EventKind::Breaker,
                json!({"state": "reset", "by": "alice"}),
                "breaker reset by alice",
            ),
            (
                EventKind::Killswitch,
                json!({"on": true, "by": "alice"}),
                "kill switch on by alice",
            ),
            (
                EventKind::Killswitch,
                json!({"on": false, "by": "alice"}),
                "kill switch off by alice",
            ),
            (
                EventKind::Agent,
                json!({"name": "bot", "kind": "agent", "action": "token_issued"}),
                "agent `bot`: token issued",
            ),
            (
                EventKind::Agent,
                json!({"name": "bot", "kind": "agent", "action": "token_revoked", "by": "cli"}),
                "agent `bot`: token revoked by cli",
            ),
            (
                EventKind::Alert,
                json!({"alert": "AirlockChangeReverted", "status": "firing", "receiver": "pager", "ok": false, "error": "refused"}),
                "alert AirlockChangeReverted firing → pager, not delivered: refused",
            ),
            (
                EventKind::Ran,
                json!({"request": {"verb": "delete", "target": "shell:namespace/shop"}, "plan_hash": "h", "succeeded": true, "allowed_by": null, "answered_hold": "apr_2"}),
                "delete shell:namespace/shop ran at the agent, succeeded; answered hold apr_2 at the prompt",
            ),
            (
                EventKind::Approval,
                json!({"approval_id": "apr_2", "decision": "ran", "by": "the agent's prompt", "outcome": "answered at the agent's prompt: it ran"}),
                "answered at the agent's prompt: it ran",
            ),
            (
                EventKind::Approval,
                json!({"approval_id": "apr_3", "decision": "approve", "by": "alice", "reason": "", "outcome": "recorded: 1 of 2 approvals"}),
                "approved by alice (recorded: 1 of 2 approvals)",
            ),
            (
                EventKind::Suspects,
                json!({"service": "web", "rule": "availability >= 0.999", "value": 0.9, "suspects": [{"change_id": "chg_1", "agent": "bot"}], "unambiguous": true}),
                "web regressed after settling, availability >= 0.999 (value 0.9000); suspects: chg_1 by bot",
            ),
        ];
        let mut kinds: Vec<&str> = cases.iter().map(|(k, ..)| k.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), 16, "a kind has no case here: {kinds:?}");
        for (kind, payload, want) in &cases {
            assert_eq!(summarize(*kind, payload), *want, "{kind}");
        }
        // Long lines are cut; line breaks fold.
        let long = summarize(
            EventKind::ApplyFailed,
            &json!({"stage": "apply", "error": "x\n".repeat(200)}),
        );
        assert_eq!(long.chars().count(), 90);
        assert!(!long.contains('\n'));
    }
}
