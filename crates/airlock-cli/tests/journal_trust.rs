//! `airlock keygen` and `airlock journal verify --public-key`: a server signs checkpoints
//! of its journal with a key kept outside the store, and the binary finds an edited
//! principal, a rewritten chain, a deleted tail and an edited export.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

use airlock_gate::PrincipalKind2;
use airlock_server::RawConfig;
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use std::process::Command;

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn airlock(cwd: &Path, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(cwd)
        .env_remove("AIRLOCK_STORE")
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("AIRLOCK_LOG")
        .output()
        .unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

async fn sql(db: &Path, statements: &[&str]) {
    let mut c = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for s in [
        "DROP TRIGGER IF EXISTS events_no_update",
        "DROP TRIGGER IF EXISTS events_no_delete",
    ]
    .iter()
    .chain(statements)
    {
        sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = airlock(dir.path(), &["keygen", "--out", "keys/journal.key"]);
    // The directory does not exist: nothing is created behind the user's back.
    assert_eq!(out.code, Some(2), "{out}");
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let out = airlock(dir.path(), &["keygen", "--out", "keys/journal.key"]);
    assert_eq!(out.code, Some(0), "{out}");
    let key = dir.path().join("keys/journal.key");
    let public = std::fs::read_to_string(dir.path().join("keys/journal.key.pub")).unwrap();
    assert_eq!(out.stdout.trim(), public.trim());
    assert!(public.starts_with("airlock-ed25519-public:"), "{public}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read_to_string(&key).unwrap();
    assert!(!out.stdout.contains(secret.trim()), "{out}");
    assert!(!out.stderr.contains(secret.trim()), "{out}");
    let again = airlock(dir.path(), &["keygen", "--out", "keys/journal.key"]);
    assert_eq!(again.code, Some(2), "{again}");
    assert!(again.stderr.contains("never overwritten"), "{again}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), secret);
    // Two keys are two keys.
    let other = airlock(dir.path(), &["keygen", "--out", "keys/other.key"]);
    assert_ne!(other.stdout, out.stdout);
}

/// A server configured with `[journal] signing_key` signs its head on shutdown; `journal
/// verify --public-key` proves the chain, and finds each kind of tampering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_checkpoints_expose_edits_rewrites_and_a_deleted_tail() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        airlock(d, &["keygen", "--out", "signing.key"]).code,
        Some(0)
    );
    let db = d.join("airlock.db");
    let store = db.to_str().unwrap();
    let text = format!(
        "[store]\nurl = \"{store}\"\n[journal]\nsigning_key = \"signing.key\"\n\
         witness = \"witness.jsonl\"\ncheckpoint_interval_s = 3600\n[sim]\nenabled = false\n"
    );
    let config = RawConfig::parse(&text, "airlock.toml")
        .unwrap()
        .validate(d)
        .unwrap();
    // Before any checkpoint: the key proves nothing, so verify with it fails.
    {
        let j = airlock_store::SqliteJournal::open(store).await.unwrap();
        drop(j);
        let out = airlock(
            d,
            &[
                "journal",
                "verify",
                "--store",
                store,
                "--public-key",
                "signing.key.pub",
            ],
        );
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stdout
                .contains("no checkpoint is signed by the given key"),
            "{out}"
        );
    }
    let started = airlock_server::live::start(&config).await.unwrap();
    started
        .state
        .gate
        .issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    started
        .state
        .gate
        .issue_token("alice", PrincipalKind2::Operator)
        .await
        .unwrap();
    started.stop().await;

    let key = "signing.key.pub";
    let out = airlock(
        d,
        &["journal", "verify", "--store", store, "--public-key", key],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("signed checkpoints verify"), "{out}");
    assert!(
        out.stdout.contains("0 events after it are not signed yet"),
        "{out}"
    );
    // The export carries the checkpoints and verifies offline.
    let out = airlock(
        d,
        &["journal", "export", "--store", store, "-o", "before.jsonl"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let exported = std::fs::read_to_string(d.join("before.jsonl")).unwrap();
    assert!(exported.contains(r#""kind":"checkpoint""#), "{exported}");
    let out = airlock(
        d,
        &[
            "journal",
            "verify",
            "--export",
            "before.jsonl",
            "--public-key",
            key,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let edited = exported.replacen(r#""name":"bot""#, r#""name": "bot""#, 1);
    assert_ne!(edited, exported);
    std::fs::write(d.join("edited.jsonl"), edited).unwrap();
    let out = airlock(
        d,
        &[
            "journal",
            "verify",
            "--export",
            "edited.jsonl",
            "--public-key",
            key,
        ],
    );
    assert_eq!(out.code, Some(1), "{out}");

    // An agent turned into an operator in the table.
    std::fs::copy(&db, d.join("promoted.db")).unwrap();
    let promoted = d.join("promoted.db");
    sql(
        &promoted,
        &["UPDATE principals SET kind = 'operator' WHERE name = 'bot'"],
    )
    .await;
    let out = airlock(
        d,
        &["journal", "verify", "--store", promoted.to_str().unwrap()],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("principal `bot`"), "{out}");

    // A rewritten chain: the edit recomputed through the end, checkpoint included.
    let rewritten = d.join("rewritten.db");
    std::fs::copy(&db, &rewritten).unwrap();
    {
        let j = airlock_store::SqliteJournal::open(rewritten.to_str().unwrap())
            .await
            .unwrap();
        let rows = airlock_store::Journal::export_rows(&j, 0, 1000)
            .await
            .unwrap();
        drop(j);
        let mut statements = Vec::new();
        let mut prev = airlock_core::event::GENESIS.to_string();
        for r in &rows {
            let payload = r
                .payload
                .get()
                .replace(r#""name":"alice""#, r#""name":"mallory""#);
            let hash = airlock_core::event::row_hash(&airlock_core::event::RowBytes {
                seq: r.seq,
                ts: r.ts,
                kind: &r.kind,
                agent: r.agent.as_deref(),
                action_id: r.action_id.as_deref(),
                change_id: r.change_id.as_deref(),
                row_digest: r.row_digest.as_deref(),
                payload: &payload,
                prev_hash: &prev,
            });
            statements.push(format!(
                "UPDATE events SET payload = '{}', prev_hash = '{prev}', hash = '{hash}' WHERE seq = {}",
                payload.replace('\'', "''"),
                r.seq
            ));
            prev = hash;
        }
        let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
        sql(&rewritten, &refs).await;
    }
    let rewritten = rewritten.to_str().unwrap();
    let out = airlock(
        d,
        &[
            "journal",
            "verify",
            "--store",
            rewritten,
            "--public-key",
            key,
        ],
    );
    assert_eq!(out.code, Some(1), "{out}");

    // A deleted tail: the newest events, the checkpoint with them.
    let cut = d.join("cut.db");
    std::fs::copy(&db, &cut).unwrap();
    sql(
        &cut,
        &[
            "DELETE FROM principals WHERE name = 'alice'",
            "DELETE FROM events WHERE seq >= (SELECT MAX(seq) - 1 FROM events)",
        ],
    )
    .await;
    let cut = cut.to_str().unwrap();
    let out = airlock(d, &["journal", "verify", "--store", cut]);
    assert_eq!(
        out.code,
        Some(0),
        "alone, a shorter chain is consistent: {out}"
    );
    let out = airlock(
        d,
        &[
            "journal",
            "verify",
            "--store",
            cut,
            "--public-key",
            key,
            "--checkpoints",
            "before.jsonl",
        ],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.contains("events were removed from its end"),
        "{out}"
    );
    // The server's own witness file, kept outside the store, shows it too.
    let witnessed = std::fs::read_to_string(d.join("witness.jsonl")).unwrap();
    assert!(witnessed.contains(r#""kind":"checkpoint""#), "{witnessed}");
    let out = airlock(
        d,
        &[
            "journal",
            "verify",
            "--store",
            cut,
            "--public-key",
            key,
            "--checkpoints",
            "witness.jsonl",
        ],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.contains("events were removed from its end"),
        "{out}"
    );
    // And the intact journal agrees with its witness.
    let out = airlock(
        d,
        &[
            "journal",
            "verify",
            "--store",
            store,
            "--public-key",
            key,
            "--checkpoints",
            "witness.jsonl",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
}
