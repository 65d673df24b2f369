//! The `airlock` binary end to end: each test runs the real executable in a directory of its
//! own (the default journal is `.airlock/airlock.db` under the working directory, the demo's
//! `.airlock/demo.db`) and checks exit codes, what is printed and what is left on disk.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// The journal every command uses when `--store` is not given.
const DEFAULT_STORE: &str = ".airlock/airlock.db";

/// The journal `airlock demo` and `airlock run` use when `--store` is not given.
const DEMO_STORE: &str = ".airlock/demo.db";

/// The two flagships the journal tests seed their store with: quick, and between them they
/// write well over five events.
const SEED_SCENARIOS: [&str; 2] = ["cost-cutter-cascade", "drift-fixer-recreate"];

/// What a run of the binary left behind.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Out {
    /// Asserts the exit code, showing everything printed when it is not the expected one.
    fn code(&self, want: i32) -> &Self {
        assert_eq!(self.code, Some(want), "{self}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{self}"))
    }
}

/// Runs `airlock ARGS` in `cwd`, with nothing inherited that would pick another journal.
fn airlock(cwd: &Path, args: &[&str]) -> Out {
    airlock_env(cwd, args, &[])
}

/// [`airlock`] with these environment variables set.
fn airlock_env(cwd: &Path, args: &[&str], vars: &[(&str, &str)]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(cwd)
        .env_remove("AIRLOCK_STORE")
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("AIRLOCK_URL")
        .env_remove("AIRLOCK_TOKEN")
        .env_remove("AIRLOCK_LOG")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scenario_file(name: &str) -> String {
    repo()
        .join("scenarios")
        .join(format!("{name}.toml"))
        .to_str()
        .unwrap()
        .to_string()
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Every file under `dir` with its bytes, sorted: equal snapshots mean nothing was touched.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                out.push((rel, Vec::new()));
                walk(root, &path, out);
            } else {
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn names(snap: &[(PathBuf, Vec<u8>)]) -> Vec<String> {
    snap.iter().map(|(p, _)| p.display().to_string()).collect()
}

/// A fresh directory whose demo journal holds the guarded runs of two flagships.
fn seeded() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["demo", "--json"];
    for name in SEED_SCENARIOS {
        args.extend(["--only", name]);
    }
    airlock(dir.path(), &args).code(0);
    dir
}

/// The verify report of the demo journal in `dir`, as JSON.
fn verify_json(dir: &Path) -> Value {
    airlock(dir, &["journal", "verify", "--json", "--store", DEMO_STORE])
        .code(0)
        .json()
}

fn events_in(dir: &Path) -> u64 {
    verify_json(dir)["events"].as_u64().unwrap()
}

/// Checks one side of a scorecard: every field is there, with the right JSON type.
fn check_side(scenario: &str, side: &str, v: &Value) {
    let what = format!("{scenario}.{side}");
    assert!(v.is_object(), "{what} is not an object: {v}");
    for field in ["availability", "slo_violation_minutes"] {
        assert!(v[field].is_f64(), "{what}.{field} is not a number: {v}");
    }
    let availability = v["availability"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&availability),
        "{what}.availability {availability} is not within 0..1"
    );
    for field in [
        "actions_attempted",
        "actions_applied",
        "denied",
        "held",
        "reverted",
        "destructive_applied",
    ] {
        assert!(v[field].is_u64(), "{what}.{field} is not a count: {v}");
    }
    let ttm = &v["time_to_mitigate_s"];
    assert!(
        ttm.is_number() || ttm.is_null(),
        "{what}.time_to_mitigate_s is neither a number nor null: {v}"
    );
}

#[test]
fn demo_json_shows_the_guard_winning_and_the_journal_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = airlock(
        dir.path(),
        &[
            "demo",
            "--only",
            "cost-cutter-cascade",
            "--only",
            "drift-fixer-recreate",
            "--json",
        ],
    );
    let doc = out.code(0).json();

    let scenarios = doc["scenarios"].as_array().unwrap();
    let mut seen: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        ["cost-cutter-cascade", "drift-fixer-recreate"],
        "{out}"
    );
    for s in scenarios {
        let name = s["name"].as_str().unwrap();
        check_side(name, "unguarded", &s["unguarded"]);
        check_side(name, "guarded", &s["guarded"]);
        let u = s["unguarded"]["availability"].as_f64().unwrap();
        let g = s["guarded"]["availability"].as_f64().unwrap();
        assert!(
            g >= 0.999,
            "{name}: guarded availability {g} misses the objective"
        );
        assert!(
            g > u,
            "{name}: guarded {g} is not better than unguarded {u}"
        );
        assert_eq!(
            s["guarded"]["destructive_applied"], 0,
            "{name}: the guard let a destructive action through"
        );
    }

    let report = dir.path().join(doc["report"].as_str().unwrap());
    assert!(report.is_file(), "no report at {}", report.display());
    assert!(text(&report).contains("<svg"), "the report has no chart");
    assert!(
        dir.path().join(DEMO_STORE).is_file(),
        "no journal in the demo's place"
    );
    assert!(
        !dir.path().join(DEFAULT_STORE).exists(),
        "the demo wrote into the live store"
    );
    assert_eq!(doc["journal"]["store"], DEMO_STORE, "{out}");
    assert_eq!(doc["journal"]["verified"], true, "{out}");
    let events = doc["journal"]["events"].as_u64().unwrap();
    assert!(events > 0, "the guarded runs journaled nothing");

    let plain = airlock(dir.path(), &["journal", "verify", "--store", DEMO_STORE]);
    plain.code(0);
    assert!(plain.stdout.contains(": ok, "), "{plain}");
    assert!(
        plain.stdout.contains(&format!("{events} events")),
        "{plain}"
    );

    let report = verify_json(dir.path());
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"], events, "{report}");
    assert!(report["first_broken"].is_null(), "{report}");
}

#[tokio::test]
async fn an_edited_event_is_named_by_journal_verify() {
    let dir = seeded();
    let db = dir.path().join(DEMO_STORE);
    assert!(events_in(dir.path()) > 5);

    // What a tamperer with write access to the file does: drop the guard rails, rewrite history.
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER events_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    let edited = sqlx::query(r#"UPDATE events SET payload = '{"verdict":"allow"}' WHERE seq = 5"#)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(edited.rows_affected(), 1);
    conn.close().await.unwrap();

    let out = airlock(dir.path(), &["journal", "verify", "--store", DEMO_STORE]);
    out.code(1);
    assert!(out.stdout.contains("BROKEN at event 5"), "{out}");

    let out = airlock(
        dir.path(),
        &["journal", "verify", "--json", "--store", DEMO_STORE],
    );
    let report = out.code(1).json();
    assert_eq!(report["ok"], false, "{out}");
    assert_eq!(report["first_broken"]["seq"], 5, "{out}");
    assert_eq!(
        report["events"], 4,
        "the four events before it still hold: {out}"
    );
}

#[test]
fn journal_show_and_export_list_the_events() {
    let dir = seeded();
    let total = events_in(dir.path());
    assert!(total > 5);
    let last_five: Vec<u64> = (total - 4..=total).collect();

    let out = airlock(
        dir.path(),
        &["journal", "show", "--limit", "5", "--store", DEMO_STORE],
    );
    out.code(0);
    // Data rows are the table lines whose first cell is a number; the header's is `seq`.
    let rows: Vec<u64> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix('│'))
        .filter_map(|l| l.split('┆').next()?.trim().parse().ok())
        .collect();
    assert_eq!(rows, last_five, "{out}");
    assert!(out.stdout.contains("kind"), "no header: {out}");

    let out = airlock(
        dir.path(),
        &[
            "journal", "show", "--limit", "5", "--json", "--store", DEMO_STORE,
        ],
    );
    out.code(0);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 5, "{out}");
    for e in &lines {
        assert!(e["seq"].is_u64(), "{e}");
        assert!(e["kind"].is_string(), "{e}");
        let hash = e["hash"].as_str().unwrap();
        assert!(
            hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{e}"
        );
    }
    let seqs: Vec<u64> = lines.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, last_five);

    let out = airlock(
        dir.path(),
        &[
            "journal",
            "export",
            "--format",
            "jsonl",
            "-o",
            "out.jsonl",
            "--store",
            DEMO_STORE,
        ],
    );
    out.code(0);
    assert!(out.stdout.is_empty(), "export to a file printed: {out}");
    let exported = text(&dir.path().join("out.jsonl"));
    let events: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "one line per event, no gaps"
    );
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["prev_hash"], pair[0]["hash"],
            "the export breaks the chain"
        );
    }

    let to_stdout = airlock(dir.path(), &["journal", "export", "--store", DEMO_STORE]);
    to_stdout.code(0);
    assert_eq!(to_stdout.stdout, exported, "stdout and file exports differ");
}

#[test]
fn a_dependency_on_an_unknown_service_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let original = text(Path::new(&scenario_file("cost-cutter-cascade")));
    let broken = original.replace(
        r#"depends_on = ["feature-flags"]"#,
        r#"depends_on = ["feature-flagz"]"#,
    );
    assert_ne!(
        broken, original,
        "the scenario no longer has the line this test edits"
    );
    std::fs::write(dir.path().join("bad-dep.toml"), broken).unwrap();
    let before = snapshot(dir.path());

    let out = airlock(dir.path(), &["scenario", "validate", "bad-dep.toml"]);
    out.code(2);
    assert!(out.stderr.contains("bad-dep.toml"), "{out}");
    assert!(
        out.stderr
            .contains("depends_on: unknown service `feature-flagz`"),
        "{out}"
    );
    assert!(!out.stdout.contains("ok:"), "{out}");

    // One bad file among good ones still fails the whole check, and the good one is named ok.
    let good = scenario_file("cost-cutter-cascade");
    let out = airlock(dir.path(), &["scenario", "validate", &good, "bad-dep.toml"]);
    out.code(2);
    assert!(out.stdout.contains("ok: "), "{out}");
    assert_eq!(
        snapshot(dir.path()),
        before,
        "validation changed the directory"
    );
}

#[test]
fn a_typo_in_a_scenario_field_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let typo = "name = \"x\"\nduration = \"1h\"\nseeed = 3\n[agent]\nname = \"cost-cutter\"\n";
    std::fs::write(dir.path().join("typo.toml"), typo).unwrap();
    let before = snapshot(dir.path());

    let out = airlock(dir.path(), &["scenario", "validate", "typo.toml"]);
    out.code(2);
    assert!(out.stderr.contains("unknown field `seeed`"), "{out}");
    assert!(
        out.stderr.contains("typo.toml:3:"),
        "`seeed` is on line 3: {out}"
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_cedar_syntax_error_is_bad_input_with_a_readable_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.cedar"),
        "@id(\"ok\")\npermit (principal, action, resource);\n\npermit (principal, action, resource) when { ;\n",
    )
    .unwrap();
    let before = snapshot(dir.path());

    let out = airlock(dir.path(), &["policy", "validate", "bad.cedar"]);
    out.code(2);
    assert!(out.stderr.starts_with("error: "), "{out}");
    assert!(out.stderr.contains("bad.cedar"), "{out}");
    assert!(out.stderr.contains("do not parse"), "{out}");
    // The house style: no Rust type names or debug dumps in what users read.
    for dump in ["ParseErrors(", "NonEmpty {", "ToCST", "UnrecognizedToken"] {
        assert!(
            !out.stderr.contains(dump),
            "debug output `{dump}` in the message: {out}"
        );
    }
    assert_eq!(snapshot(dir.path()), before);

    let shipped = repo().join("policies/default.cedar");
    airlock(
        dir.path(),
        &["policy", "validate", shipped.to_str().unwrap()],
    )
    .code(0);
}

#[test]
fn a_missing_scenario_file_is_bad_input_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = airlock(dir.path(), &["run", "missing.toml"]);
    out.code(2);
    assert!(out.stderr.contains("cannot read `missing.toml`"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert_eq!(
        names(&snapshot(dir.path())),
        Vec::<String>::new(),
        "a run left files"
    );
}

#[test]
fn an_unknown_flagship_is_bad_input_and_creates_no_journal() {
    let dir = tempfile::tempdir().unwrap();
    let out = airlock(dir.path(), &["demo", "--only", "nonsense"]);
    out.code(2);
    assert!(out.stderr.contains("--only"), "{out}");
    assert!(
        out.stderr.contains("cost-cutter-cascade"),
        "the choices are listed: {out}"
    );
    assert_eq!(names(&snapshot(dir.path())), Vec::<String>::new());
}

#[test]
fn verifying_a_journal_that_does_not_exist_does_not_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = airlock(
        dir.path(),
        &["journal", "verify", "--store", "nonexistent.db"],
    );
    out.code(2);
    assert!(
        out.stderr.contains("no journal at `nonexistent.db`"),
        "{out}"
    );
    assert!(
        !dir.path().join("nonexistent.db").exists(),
        "verify created the file"
    );
    assert_eq!(names(&snapshot(dir.path())), Vec::<String>::new());

    // Nor the default one.
    airlock(dir.path(), &["journal", "show"]).code(2);
    airlock(dir.path(), &["journal", "export"]).code(2);
    assert_eq!(names(&snapshot(dir.path())), Vec::<String>::new());
}

#[test]
fn an_unknown_event_kind_is_bad_input() {
    let dir = seeded();
    let events = events_in(dir.path());
    let export = airlock(dir.path(), &["journal", "export", "--store", DEMO_STORE])
        .code(0)
        .stdout
        .clone();

    let out = airlock(
        dir.path(),
        &[
            "journal", "show", "--kind", "nonsense", "--store", DEMO_STORE,
        ],
    );
    out.code(2);
    assert!(
        out.stderr.contains("unknown event kind `nonsense`"),
        "{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");

    assert_eq!(events_in(dir.path()), events);
    assert_eq!(
        airlock(dir.path(), &["journal", "export", "--store", DEMO_STORE]).stdout,
        export
    );
}

#[test]
fn a_journal_that_cannot_be_opened_stops_the_run_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), "not a directory\n").unwrap();
    let store = dir.path().join("blocker/journal.db");
    let before = snapshot(dir.path());

    let scenario = scenario_file("cost-cutter-cascade");
    let out = airlock(
        dir.path(),
        &[
            "run",
            &scenario,
            "--mode",
            "guarded",
            "--store",
            store.to_str().unwrap(),
        ],
    );
    assert_ne!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("cannot be opened"), "{out}");
    assert!(out.stdout.is_empty(), "a run happened anyway: {out}");

    // The demo refuses the same way, before writing its report.
    let out = airlock(
        dir.path(),
        &[
            "demo",
            "--only",
            "cost-cutter-cascade",
            "--store",
            store.to_str().unwrap(),
        ],
    );
    assert_ne!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("cannot be opened"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a refused run left files behind"
    );
}

#[test]
fn a_scenario_run_is_reproducible_from_its_seed() {
    let scenario = scenario_file("config-push-all-regions");
    let run = |extra: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["run", scenario.as_str(), "--json"];
        args.extend_from_slice(extra);
        let out = airlock(dir.path(), &args);
        out.code(0);
        out.stdout
    };

    let first = run(&[]);
    let second = run(&[]);
    assert_eq!(first, second, "two runs from the same seed differ");
    let doc: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(doc["name"], "config-push-all-regions");
    assert_eq!(doc["seed"], 3);
    check_side("config-push-all-regions", "unguarded", &doc["unguarded"]);
    check_side("config-push-all-regions", "guarded", &doc["guarded"]);

    let other = run(&["--seed", "99"]);
    let doc: Value = serde_json::from_str(&other).unwrap();
    assert_eq!(doc["seed"], 99);
    check_side("config-push-all-regions", "unguarded", &doc["unguarded"]);
    check_side("config-push-all-regions", "guarded", &doc["guarded"]);
    assert_eq!(
        run(&["--seed", "99"]),
        other,
        "two runs from seed 99 differ"
    );
}

#[test]
fn every_shipped_scenario_validates() {
    fn tomls(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir()
                && path
                    .file_name()
                    .is_some_and(|n| n == "config" || n == "aws")
            {
                // Server configs, checked by `every_example_config_validates`.
                continue;
            } else if path.is_dir() {
                tomls(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    tomls(&repo().join("scenarios"), &mut files);
    assert!(!files.is_empty(), "no scenarios found");
    tomls(&repo().join("examples"), &mut files);
    files.sort();

    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["scenario", "validate"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = airlock(dir.path(), &args);
    out.code(0);
    for f in &files {
        assert!(
            out.stdout.contains(&format!("ok: {}", f.display())),
            "{} is not reported ok: {out}",
            f.display()
        );
    }
}

#[test]
fn every_example_config_validates() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs: Vec<PathBuf> = std::fs::read_dir(repo().join("examples").join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    configs.push(repo().join("examples").join("aws").join("airlock.toml"));
    assert!(!configs.is_empty(), "no example configs found");
    for c in &configs {
        let out = airlock(dir.path(), &["config", "validate", c.to_str().unwrap()]);
        out.code(0);
        // An upstream's command runs where `airlock serve` is started: the repository root
        // for the examples. Every script it names must be in the repository.
        let raw = airlock_server::RawConfig::parse(&text(c), &c.display().to_string()).unwrap();
        for u in &raw.upstream {
            for arg in u.command.iter().skip(1) {
                let script = [".py", ".js", ".mjs", ".ts", ".sh"]
                    .iter()
                    .any(|ext| arg.ends_with(ext));
                assert!(
                    !script || repo().join(arg).is_file(),
                    "{}: upstream `{}` runs `{arg}`, which is not in the repository",
                    c.display(),
                    u.name
                );
            }
        }
    }
    // A broken upstream entry is reported with its field.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[upstream]]\nname = \"Bad Name\"\n[hook]\non_hold = \"allow\"\n",
    )
    .unwrap();
    let out = airlock(dir.path(), &["config", "validate", bad.to_str().unwrap()]);
    out.code(2);
    assert!(out.stderr.contains("upstream[0].name"), "{out}");
    assert!(
        out.stderr.contains("upstream[0]: set `command` or `url`"),
        "{out}"
    );
    assert!(out.stderr.contains("hook.on_hold"), "{out}");
}

#[test]
fn help_explains_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = airlock(dir.path(), &["--help"]);
    out.code(0);
    assert!(out.stdout.contains("Exit codes"), "{out}");
    assert!(out.stdout.contains("2 bad input"), "{out}");

    let out = airlock(dir.path(), &["demo", "--help"]);
    out.code(0);
    assert!(out.stdout.contains("--only"), "{out}");

    // Usage errors are bad input too.
    airlock(dir.path(), &[]).code(2);
    airlock(dir.path(), &["run", "--no-such-flag"]).code(2);
    assert_eq!(names(&snapshot(dir.path())), Vec::<String>::new());
}

#[test]
fn prove_gates_ci_on_assertions_with_pass_k_junit_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario_file("runaway-loop");
    let out = airlock(
        dir.path(),
        &[
            "prove",
            &file,
            "--seeds",
            "2",
            "--json",
            "--junit",
            "out/junit.xml",
        ],
    );
    // The unguarded runaway breaks the SLO: an assertion fails, so the exit code is 1.
    out.code(1);
    let v = out.json();
    assert_eq!(v["passed"], false);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(
        runs.len(),
        8,
        "2 seeds × (unguarded, guarded, reference, do-nothing)"
    );
    let sum = &v["summary"][0];
    let mode = |m: &str| {
        sum["modes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["mode"] == m)
            .cloned()
            .unwrap()
    };
    assert_eq!(mode("guarded")["pass_k"], true, "{sum}");
    assert_eq!(mode("unguarded")["pass_k"], false, "{sum}");
    assert_eq!(sum["reference"]["passed"], 2);
    for r in runs {
        let card = &r["scorecard"];
        assert!(card["error_budget_burned"].is_number(), "{card}");
        if r["cast"] == "agent" {
            assert!(card["cost_vs_reference"].is_number(), "{card}");
        }
    }
    let junit = std::fs::read_to_string(dir.path().join("out/junit.xml")).unwrap();
    assert!(
        // Per seed: the agent unguarded and guarded, the reference and the do-nothing run.
        junit.contains("<testsuites name=\"airlock prove\" tests=\"8\" failures=\"2\">"),
        "{junit}"
    );
    assert!(
        junit.contains("<failure message=\"availability &gt;= 0.999\""),
        "{junit}"
    );

    // Guarded only: everything passes, exit 0, and the table says so.
    let out = airlock(
        dir.path(),
        &["prove", &file, "--seeds", "2", "--mode", "guarded"],
    );
    out.code(0);
    assert!(out.stdout.contains("all assertions passed"), "{out}");
}

#[test]
fn prove_shards_deal_every_seed_to_exactly_one_shard() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario_file("no-fault-control");
    let seeds_of = |shard: &str| -> Vec<u64> {
        let out = airlock(
            dir.path(),
            &[
                "prove",
                &file,
                "--seeds",
                "5",
                "--mode",
                "guarded",
                "--no-baselines",
                "--shard",
                shard,
                "--json",
            ],
        );
        out.code(0);
        out.json()["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seed"].as_u64().unwrap())
            .collect()
    };
    let (a, b) = (seeds_of("1/2"), seeds_of("2/2"));
    let mut all: Vec<u64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (101..106).collect::<Vec<_>>(), "{a:?} {b:?}");
    assert!(a.iter().all(|s| !b.contains(s)));
    let bad = airlock(dir.path(), &["prove", &file, "--shard", "3/2"]);
    bad.code(2);
}

#[test]
fn prove_refuses_a_bad_assertion_naming_file_and_field_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(scenario_file("runaway-loop"))
        .unwrap()
        .replace("\"availability >= 0.999\"", "\"availabilty >= 0.999\"");
    std::fs::write(dir.path().join("bad.toml"), text).unwrap();
    let out = airlock(dir.path(), &["prove", "bad.toml", "--junit", "j.xml"]);
    out.code(2);
    assert!(out.stderr.contains("bad.toml"), "{out}");
    assert!(
        out.stderr
            .contains("assert[0]: `availabilty >= 0.999`: unknown metric"),
        "{out}"
    );
    assert!(!dir.path().join("j.xml").exists(), "nothing ran");
}

#[test]
fn an_external_agent_acts_in_turns_through_mcp() {
    let dir = tempfile::tempdir().unwrap();
    let agent = repo().join("examples/agents/mcp_agent.py");
    let cmd = format!("python3 {}", agent.display());
    let out = airlock(
        dir.path(),
        &[
            "prove",
            &scenario_file("az-loss"),
            "--seeds",
            "1",
            "--agent-cmd",
            &cmd,
            "--json",
        ],
    );
    let v = out.json();
    let agent_runs: Vec<&Value> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["cast"] == "agent")
        .collect();
    assert_eq!(agent_runs.len(), 2, "{out}");
    for r in agent_runs {
        assert_eq!(r["agent"], "az-loss-agent");
        // The sample agent scales the hot fleet up at its first turn, and the guard lets it.
        assert!(
            r["scorecard"]["actions_applied"].as_u64().unwrap() >= 1,
            "{r}"
        );
        assert_eq!(r["scorecard"]["denied"], 0, "{r}");
        assert_eq!(r["scorecard"]["destructive_applied"], 0, "{r}");
    }
    assert!(out.stderr.contains("[mcp_agent] the run is over"), "{out}");
}

#[test]
fn providers_lists_the_registered_kinds_and_config_validate_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let v = airlock(dir.path(), &["providers", "--json"]).code(0).json();
    let kinds: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["aws", "shell", "tool"]);
    std::fs::write(
        dir.path().join("airlock.toml"),
        "[[provider]]\nkind = \"cloud\"\nname = \"aws\"\n",
    )
    .unwrap();
    let out = airlock(dir.path(), &["config", "validate", "airlock.toml"]);
    out.code(2);
    assert!(
        out.stderr.contains(
            "provider[0].kind: unknown provider kind `cloud`; known kinds: aws, shell, tool"
        ),
        "{out}"
    );
}

/// Regression: `airlock demo` and `airlock run` wrote their simulated events, on virtual
/// time, into `.airlock/airlock.db`, the live journal of `airlock serve`, even when
/// AIRLOCK_STORE named the live store elsewhere.
#[test]
fn the_demo_and_run_keep_a_store_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let env = [("AIRLOCK_STORE", live.to_str().unwrap())];
    let out = airlock_env(
        dir.path(),
        &["demo", "--only", "cost-cutter-cascade", "--json"],
        &env,
    );
    let doc = out.code(0).json();
    assert_eq!(doc["journal"]["store"], DEMO_STORE, "{out}");
    let after_demo = events_in(dir.path());
    assert!(after_demo > 0);

    let scenario = scenario_file("cost-cutter-cascade");
    airlock_env(dir.path(), &["run", &scenario, "--mode", "guarded"], &env).code(0);
    assert!(
        events_in(dir.path()) > after_demo,
        "the run journaled elsewhere"
    );
    assert!(!live.exists(), "the demo wrote into AIRLOCK_STORE");
    assert!(
        !dir.path().join(DEFAULT_STORE).exists(),
        "the demo wrote into the live store"
    );

    // Told otherwise, it writes where it is told.
    let mine = dir.path().join("mine.db");
    airlock(
        dir.path(),
        &[
            "run",
            &scenario,
            "--mode",
            "guarded",
            "--store",
            mine.to_str().unwrap(),
        ],
    )
    .code(0);
    assert!(mine.is_file());

    let help = airlock(dir.path(), &["demo", "--help"]);
    assert!(help.code(0).stdout.contains(".airlock/demo.db"), "{help}");
}

/// Regression: `airlock token create` honoured AIRLOCK_STORE and `airlock serve` did not, so
/// every request with the new token was refused. One rule now: `--store`, else
/// AIRLOCK_STORE, else the config's `[store] url`, else `.airlock/airlock.db`.
#[test]
fn every_local_command_finds_the_store_by_one_rule() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tokens = |vars: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec!["token", "list", "--json"];
        args.extend_from_slice(extra);
        let out = airlock_env(d, &args, vars);
        out.code(0)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };

    // No config, no variable, no flag: the default store.
    airlock(d, &["token", "create", "--agent", "in-default"]).code(0);
    assert!(d.join(DEFAULT_STORE).is_file());
    assert_eq!(tokens(&[], &[]), ["in-default"]);

    // A config file's `[store] url` wins over the default.
    std::fs::write(d.join("airlock.toml"), "[store]\nurl = 'cfg/airlock.db'\n").unwrap();
    airlock(d, &["token", "create", "--agent", "in-config"]).code(0);
    assert_eq!(tokens(&[], &[]), ["in-config"]);
    // `--config` names another file (and AIRLOCK_CONFIG does too).
    std::fs::write(d.join("other.toml"), "[store]\nurl = 'other.db'\n").unwrap();
    airlock(
        d,
        &[
            "token",
            "create",
            "--agent",
            "in-other",
            "--config",
            "other.toml",
        ],
    )
    .code(0);
    assert_eq!(
        tokens(&[("AIRLOCK_CONFIG", "other.toml")], &[]),
        ["in-other"]
    );

    // The variable wins over the config.
    let env = [("AIRLOCK_STORE", "env.db")];
    airlock_env(d, &["token", "create", "--agent", "in-env"], &env).code(0);
    assert_eq!(tokens(&env, &[]), ["in-env"]);
    let verify = airlock_env(d, &["journal", "verify"], &env);
    assert!(
        verify
            .code(0)
            .stdout
            .contains("journal `env.db`: ok, 1 events"),
        "{verify}"
    );

    // The flag wins over both.
    airlock_env(
        d,
        &[
            "token", "create", "--agent", "in-flag", "--store", "flag.db",
        ],
        &env,
    )
    .code(0);
    assert_eq!(tokens(&env, &["--store", "flag.db"]), ["in-flag"]);

    // With a store named, a broken config is never read.
    std::fs::write(d.join("airlock.toml"), "this is not toml [").unwrap();
    assert_eq!(tokens(&env, &[]), ["in-env"]);
    let out = airlock(d, &["journal", "verify"]);
    out.code(2);
    assert!(out.stderr.contains("airlock.toml"), "{out}");

    // Errors name the store they looked in.
    let out = airlock_env(d, &["show", "chg_nope"], &env);
    out.code(2);
    assert!(out.stderr.contains("the store `env.db`"), "{out}");
    let out = airlock_env(d, &["token", "revoke", "nobody"], &env);
    out.code(2);
    assert!(out.stderr.contains("env.db"), "{out}");
}

/// Regression: copying `airlock.db` while a server runs gives an empty journal, because the
/// newest events are still in the write-ahead log. `journal backup` takes them too.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_while_the_store_is_open_holds_every_event() {
    use airlock_core::event::{EventKind, NewEvent};
    use airlock_store::Journal;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let db = d.join("live.db");
    // Another connection holds the store open with writes in its WAL, as a server would.
    let live = airlock_store::SqliteJournal::open(db.to_str().unwrap())
        .await
        .unwrap();
    for i in 0..40 {
        live.append(NewEvent::new(
            1_000 + i,
            EventKind::Request,
            serde_json::json!({"n": i}),
        ))
        .await
        .unwrap();
    }
    let wal = d.join("live.db-wal");
    assert!(
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0,
        "the events are not in the write-ahead log; the test shows nothing"
    );

    // What a plain file copy gets: not the 40 events.
    std::fs::copy(&db, d.join("copied.db")).unwrap();
    let copied = airlock(&d, &["journal", "verify", "--json", "--store", "copied.db"]);
    assert!(
        copied.code != Some(0) || copied.json()["events"] != 40,
        "a plain copy held every event; the regression is not reproduced: {copied}"
    );

    let run = |args: Vec<String>| {
        let d = d.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            airlock(&d, &args)
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let out = run(args(&[
        "journal",
        "backup",
        "backups/b.db",
        "--store",
        "live.db",
        "--json",
    ]))
    .await
    .unwrap();
    let report = out.code(0).json();
    assert_eq!(report["ok"], true, "{out}");
    assert_eq!(report["events"], 40, "{out}");
    assert!(!d.join("backups/b.db.partial").exists());

    // The journal's own verify agrees, with the same head as the live store.
    let verified = run(args(&[
        "journal",
        "verify",
        "--json",
        "--store",
        "backups/b.db",
    ]))
    .await
    .unwrap();
    let verified = verified.code(0).json();
    assert_eq!(verified["events"], 40);
    assert_eq!(verified["head"], live.verify().await.unwrap().head);

    // The store goes on being written while backups are taken; a backup never overwrites.
    live.append(NewEvent::new(
        2_000,
        EventKind::Request,
        serde_json::json!({}),
    ))
    .await
    .unwrap();
    let again = run(args(&[
        "journal",
        "backup",
        "backups/b.db",
        "--store",
        "live.db",
    ]))
    .await
    .unwrap();
    again.code(2);
    assert!(again.stderr.contains("exists"), "{again}");
    let second = run(args(&["journal", "backup", "b2.db", "--store", "live.db"]))
        .await
        .unwrap();
    assert!(second.code(0).stdout.contains("ok, 41 events"), "{second}");

    // No store, no backup (and nothing created).
    let out = run(args(&[
        "journal",
        "backup",
        "x.db",
        "--store",
        "missing.db",
    ]))
    .await
    .unwrap();
    out.code(2);
    assert!(!d.join("x.db").exists() && !d.join("missing.db").exists());
}

#[test]
fn token_list_shows_names_kinds_and_revocations_never_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Listing an empty place is bad input and creates nothing.
    airlock(d, &["token", "list"]).code(2);
    assert_eq!(names(&snapshot(d)), Vec::<String>::new());

    let bot = airlock(
        d,
        &["token", "create", "--agent", "bot", "--profile", "coding"],
    )
    .code(0)
    .stdout
    .trim()
    .to_string();
    airlock(d, &["token", "create", "--operator", "alice"]).code(0);
    airlock(d, &["token", "revoke", "bot"]).code(0);

    let out = airlock(d, &["token", "list"]);
    out.code(0);
    assert!(!out.stdout.contains(&bot), "the token is shown: {out}");
    let rows: Vec<Vec<String>> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix('│'))
        .map(|l| {
            l.trim_end_matches('│')
                .split('┆')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 3, "a header and two principals: {out}");
    assert_eq!(
        rows[0],
        ["name", "kind", "profile", "created (UTC)", "revoked"]
    );
    assert_eq!(
        (
            rows[1][0].as_str(),
            rows[1][1].as_str(),
            rows[1][2].as_str(),
            rows[1][4].as_str()
        ),
        ("alice", "operator", "-", "no")
    );
    assert_eq!(
        (
            rows[2][0].as_str(),
            rows[2][1].as_str(),
            rows[2][2].as_str(),
            rows[2][4].as_str()
        ),
        ("bot", "agent", "coding", "yes")
    );
    // A profile the config does not define is bad input; an operator has none.
    airlock(d, &["token", "create", "--agent", "x", "--profile", "nope"]).code(2);
    airlock(
        d,
        &["token", "create", "--operator", "y", "--profile", "coding"],
    )
    .code(2);

    airlock(d, &["token", "create", "--admin", "root"]).code(0);
    airlock(d, &["token", "create", "--admin", "r2", "--operator", "o2"]).code(2);
    let out = airlock(d, &["token", "list", "--json"]);
    let doc = out.code(0).json();
    assert_eq!(doc[2]["name"], "root");
    assert_eq!(doc[2]["kind"], "admin");
    assert_eq!(doc[1]["name"], "bot");
    assert_eq!(doc[1]["revoked"], true);
    assert_eq!(doc[1]["profile"], "coding");
    assert!(
        doc[1]["created_at"].as_i64().unwrap() > 1_600_000_000_000,
        "{doc}"
    );
    for p in doc.as_array().unwrap() {
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["name", "kind", "profile", "created_at", "revoked"],
            "{p}"
        );
    }
    assert!(!out.stdout.contains(&bot));
}

#[test]
fn completions_and_the_man_page_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let bash = airlock(dir.path(), &["completions", "bash"]);
    bash.code(0);
    for sub in [
        "demo",
        "run",
        "prove",
        "serve",
        "journal",
        "backup",
        "token",
        "list",
        "killswitch",
        "tail",
        "mcp",
        "hook",
        "completions",
        "man",
    ] {
        assert!(
            bash.stdout.contains(sub),
            "`{sub}` is not completed:\n{bash}"
        );
    }
    airlock(dir.path(), &["completions", "zsh"]).code(0);
    airlock(dir.path(), &["completions", "fish"]).code(0);
    airlock(dir.path(), &["completions", "tcsh"]).code(2);

    let man = airlock(dir.path(), &["man"]);
    man.code(0);
    assert!(man.stdout.contains(".TH airlock 1"), "{man}");
    assert!(man.stdout.contains("killswitch"), "{man}");
    assert_eq!(names(&snapshot(dir.path())), Vec::<String>::new());
}

/// The docs name every built-in agent the code has, and the error that lists them lists
/// them all.
#[test]
fn the_docs_list_every_built_in_agent() {
    let agents = airlock_prove::agents::BUILT_IN;
    let guide = text(&repo().join("docs/proving-ground.md"));
    let section = guide
        .split("\n## Built-in agents")
        .nth(1)
        .expect("docs/proving-ground.md has no `## Built-in agents` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    for a in agents {
        assert!(
            section.contains(&format!("| `{a}` |")),
            "docs/proving-ground.md does not list the built-in agent `{a}`"
        );
    }
    let rows = section.lines().filter(|l| l.starts_with("| `")).count();
    assert_eq!(
        rows,
        agents.len(),
        "the section lists agents the code does not have"
    );

    let listed = format!("built-in agents are {}", agents.join(", "));
    for doc in ["docs/cli.md", "docs/proving-ground.md", "README.md"] {
        for line in text(&repo().join(doc)).lines() {
            if line.contains("built-in agents are") {
                assert!(line.contains(&listed), "{doc}: a stale list: {line}");
            }
        }
    }
    // And the error says the same.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("typo.toml"),
        "name = \"x\"\nduration = \"1h\"\n[agent]\nname = \"cost-cutterz\"\n",
    )
    .unwrap();
    let out = airlock(dir.path(), &["scenario", "validate", "typo.toml"]);
    out.code(2);
    assert!(out.stderr.contains(&listed), "{out}");
}

#[test]
fn bench_sim_reports_the_simulator_against_its_minimal_model_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = airlock(
        dir.path(),
        &[
            "bench",
            "sim",
            "--services",
            "5",
            "--hours",
            "1",
            "--runs",
            "1",
            "--json",
        ],
    );
    let v = out.code(0).json();
    assert_eq!(v["ticks"], 360, "{v}");
    for k in ["sim_ms", "minimal_model_ms", "ratio"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k}: {v}");
    }
}

#[test]
fn bench_hook_times_the_hook_against_process_start_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = airlock(dir.path(), &["bench", "hook", "--runs", "3", "--json"]);
    let v = out.code(0).json();
    assert_eq!(v["decisions"]["allow"], 3, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(v["journal_verified"], true, "{v}");
    for k in ["hook", "process_start"] {
        assert!(v[k]["p50_ms"].as_f64().is_some_and(|x| x > 0.0), "{k}: {v}");
    }
}

#[test]
fn bench_http_measures_open_loop_saturation_and_an_exact_budget() {
    let dir = tempfile::tempdir().unwrap();
    let out = airlock(
        dir.path(),
        &[
            "bench",
            "http",
            "--rate",
            "50",
            "--seconds",
            "1",
            "--concurrency",
            "4",
            "--services",
            "40",
            "--budget",
            "5",
            "--json",
        ],
    );
    let v = out.code(0).json();
    let sat = &v["saturation"];
    assert_eq!(sat["budget"]["allowed"], 5, "{v}");
    assert_eq!(sat["budget"]["sent"], 16, "{v}");
    assert_eq!(sat["budget"]["exact"], true, "{v}");
    let m = &sat["mutations"];
    assert!(m["ok"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert_eq!(m["ok"], m["allowed"], "every mutation was applied: {v}");
    assert!(
        sat["reads"]["per_s"].as_f64().is_some_and(|x| x > 0.0),
        "{v}"
    );
    assert_eq!(v["journal_verified"], true, "{v}");
}

#[test]
fn bench_prove_times_a_library_against_its_do_nothing_floor() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    std::fs::write(
        lib.join("quiet.toml"),
        "name = \"quiet\"\nseed = 3\ntick = \"10s\"\nduration = \"1h\"\nassert = [\"availability >= 0.99\"]\n\
         [agent]\nname = \"noop\"\n[[region]]\nname = \"r\"\nazs = [\"r-a\"]\n\
         [[service]]\nname = \"web\"\nenv = \"prod\"\nregion = \"r\"\nreplicas = 4\ncapacity_rps = 100\n\
         demand = { base_rps = 100 }\n",
    )
    .unwrap();
    let out = airlock(
        dir.path(),
        &["bench", "prove", "--dir", "lib", "--runs", "1", "--json"],
    );
    let v = out.code(0).json();
    assert_eq!(v["scenarios"], 1, "{v}");
    assert_eq!(v["reproducible"], true, "{v}");
    assert_eq!(v["scenarios_failing_assertions"], json!([]), "{v}");
    assert!(
        v["library_s"]["median"].as_f64().is_some_and(|x| x > 0.0),
        "{v}"
    );
    assert!(
        v["floor_s"]["median"].as_f64().is_some_and(|x| x > 0.0),
        "{v}"
    );
    // A library whose assertions fail is reported, not hidden: the time is still its time.
    std::fs::write(
        lib.join("quiet.toml"),
        std::fs::read_to_string(lib.join("quiet.toml"))
            .unwrap()
            .replace("availability >= 0.99", "availability >= 1.5"),
    )
    .unwrap();
    let out = airlock(
        dir.path(),
        &["bench", "prove", "--dir", "lib", "--runs", "2", "--json"],
    );
    let v = out.code(0).json();
    assert_eq!(v["scenarios_failing_assertions"], json!(["quiet"]), "{v}");
    assert_eq!(v["reproducible"], true, "{v}");
}
