//! The crash test: `airlock serve` is killed at random moments and at chosen failpoints
//! while agents submit changes concurrently, round after round. After each kill a clean
//! server starts (reconciling what the crash left), stops gracefully, and the test checks:
//! the hash chain verifies; every answer an agent received is journaled; no action or
//! change was applied twice; no intent is left open; and the world the sandbox saved
//! matches, service by service, the state the journal says each service is in.
//!
//! `AIRLOCK_CRASH_ROUNDS` (default 50) and `AIRLOCK_CRASH_SEED` (default 1) make longer or
//! other runs; a run is reproducible from its seed up to the timing of the kills.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

mod common;

use airlock_core::{ChangeStatus, EventKind};
use airlock_store::{EventQuery, Journal, SqliteJournal};
use common::{Env, Server, free_port};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

const SERVICES: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];

fn world() -> String {
    let mut w = String::from(
        "name = \"crash\"\nduration = \"1h\"\n\n[agent]\nname = \"cost-cutter\"\nparams = { env = \"dev\" }\n\n\
         [[region]]\nname = \"r\"\nazs = [\"r-a\", \"r-b\"]\n\n\
         [[version]]\nname = \"bad\"\nerror_rate = 0.5\n",
    );
    for s in SERVICES {
        w.push_str(&format!(
            "\n[[service]]\nname = \"{s}\"\nenv = \"dev\"\nregion = \"r\"\nreplicas = 4\n\
             capacity_rps = 100\ndemand = {{ base_rps = 100 }}\n"
        ));
    }
    w
}

/// Guards and the anomaly detector out of the way: the load is many quick changes on
/// purpose, and the test is about what happens to them, not whether they are allowed.
const EXTRA: &str = "[guards]\nmutations_per_minute = 100000\nmax_capacity_cut_pct = 100.0\n\
                     max_capacity_add_pct = 100000.0\nbreaker_reverts = 100000\n\n\
                     [anomaly]\nenabled = false\n";

/// A small, seeded generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Starts `airlock serve` with `vars`; `None` when it died before it was ready (a
/// failpoint can crash it while it recovers).
async fn start(env: &Env, vars: &[(&str, String)]) -> Option<Server> {
    // The port is free when probed but may be taken before the server binds it: then it
    // exits at once, and another port is tried.
    for _ in 0..3 {
        match start_on(env, vars, free_port()).await {
            Started::Ready(server) => return Some(server),
            Started::Crashed => return None,
            Started::PortTaken => continue,
        }
    }
    panic!("airlock serve could not bind a free port in 3 tries");
}

enum Started {
    Ready(Server),
    Crashed,
    PortTaken,
}

async fn start_on(env: &Env, vars: &[(&str, String)], port: u16) -> Started {
    let log = env.dir.path().join(format!("serve-{port}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("serve")
        .arg("--config")
        .arg(&env.config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(env.dir.path())
        .env_remove("AIRLOCK_STORE")
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("AIRLOCK_FAILPOINTS")
        .env("AIRLOCK_LOG", "warn")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
        http: reqwest::Client::new(),
    };
    for _ in 0..600 {
        if let Some(status) = server.child.try_wait().unwrap() {
            let log = server.log();
            if log.contains("cannot listen on") {
                return Started::PortTaken;
            }
            assert!(
                log.contains("crashing on purpose"),
                "airlock serve exited ({status}) before it was ready, not at a failpoint \
                 (with {vars:?}):\n{log}"
            );
            return Started::Crashed;
        }
        if let Ok(r) = server
            .http
            .get(format!("{}/readyz", server.url))
            .send()
            .await
            && r.status().is_success()
        {
            return Started::Ready(server);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("airlock serve was not ready in 30 s:\n{}", server.log());
}

/// One agent's requests against one service until the server stops answering; returns
/// the answers it received.
async fn agent_load(url: String, token: String, service: &str, seed: u64) -> Vec<Value> {
    let http = reqwest::Client::new();
    let mut rng = Rng(seed);
    let mut answers = Vec::new();
    loop {
        let action = match rng.below(4) {
            0 => json!({"verb": "deploy", "params": {"version": "bad"}}),
            1 => json!({"verb": "deploy", "params": {"version": format!("v{}", 2 + rng.below(5))}}),
            _ => json!({"verb": "scale", "params": {"replicas": 2 + rng.below(6)}}),
        };
        let body = json!({"provider": "sim", "verb": action["verb"], "target": format!("sim:service/{service}"), "params": action["params"]});
        let sent = http
            .post(format!("{url}/v1/actions"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await;
        let Ok(resp) = sent else { return answers };
        let status = resp.status().as_u16();
        let Ok(text) = resp.text().await else {
            return answers;
        };
        if status == 200 || status == 202 {
            let answer: Value = serde_json::from_str(&text).unwrap();
            // After a bad deploy, leave the service alone so its bake can revert it.
            if answer["status"] == "baking" && body["params"]["version"] == "bad" {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            answers.push(answer);
        } else {
            // Refusals are answers too, but carry no decision to check.
            assert!(status >= 400, "{status}: {text}");
        }
    }
}

/// The parts of a service's state a change decides (a restart's generation is not one).
fn essence(v: &Value) -> Value {
    json!({"exists": v["exists"], "version": v["version"], "replicas": v["replicas"]})
}

#[derive(Default)]
struct Totals {
    rounds: u32,
    crashed_at_failpoint: u32,
    answers: usize,
    applied: usize,
    reverted: usize,
    reconciled: usize,
    needs_attention: usize,
    compared: usize,
    /// The state each applied change left, by change id.
    applied_states: BTreeMap<String, Value>,
    /// Events of each kind in the journal at the end.
    kinds: BTreeMap<&'static str, usize>,
}

/// Checks the journal against the answers and the world; returns what it counted.
async fn check(env: &Env, answers: &[Value], totals: &mut Totals, round: u32) {
    let out = env
        .airlock(&["journal", "verify", "--store", &env.store()])
        .await;
    assert_eq!(out.code, Some(0), "round {round}: {out}");

    let journal = SqliteJournal::open_read_only(&env.store()).await.unwrap();
    let events = journal.read(EventQuery::default()).await.unwrap();

    // No intent left open, and no change applied twice.
    for status in [ChangeStatus::Applying, ChangeStatus::Reverting] {
        let open = journal.changes_with_status(status).await.unwrap();
        assert!(open.is_empty(), "round {round}: open intents {open:?}");
    }
    let mut applied_per_action: BTreeMap<String, u32> = BTreeMap::new();
    let mut applied_per_change: BTreeMap<String, u32> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind == EventKind::Applied) {
        *applied_per_action
            .entry(e.action_id.clone().unwrap())
            .or_default() += 1;
        *applied_per_change
            .entry(e.change_id.clone().unwrap())
            .or_default() += 1;
    }
    assert!(
        applied_per_action.values().all(|n| *n == 1)
            && applied_per_change.values().all(|n| *n == 1),
        "round {round}: something was applied twice"
    );

    // Every answer an agent received is journaled as it was answered.
    let verdicts: BTreeMap<String, String> = events
        .iter()
        .filter(|e| e.kind == EventKind::Verdict)
        .map(|e| {
            (
                e.action_id.clone().unwrap(),
                e.payload["verdict"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    for a in answers {
        let id = a["id"].as_str().unwrap();
        assert_eq!(
            verdicts.get(id).map(String::as_str),
            a["verdict"].as_str(),
            "round {round}: answer not journaled as given: {a}"
        );
        if let Some(cid) = a["change_id"].as_str()
            && a["status"] == "baking"
        {
            assert_eq!(
                applied_per_change.get(cid),
                Some(&1),
                "round {round}: an applied answer without its applied event: {a}"
            );
        }
    }

    // The world the journal describes: per service, the state its newest outcome left.
    let mut expected: BTreeMap<String, Option<Value>> = BTreeMap::new();
    totals.reconciled = 0;
    for e in &events {
        let Some(cid) = &e.change_id else { continue };
        let entries = match e.kind {
            EventKind::Applied => {
                if e.payload["reconciled"] == true {
                    totals.reconciled += 1;
                }
                // What a change applied never changes: read once across rounds.
                if !totals.applied_states.contains_key(cid) {
                    let rec = journal.change(cid).await.unwrap().unwrap();
                    totals
                        .applied_states
                        .insert(cid.clone(), rec.record["applied"]["entries"].clone());
                }
                totals.applied_states[cid].clone()
            }
            EventKind::Reverted => {
                if e.payload["reconciled"] == true {
                    totals.reconciled += 1;
                }
                e.payload["restored"]["entries"].clone()
            }
            EventKind::NeedsAttention | EventKind::RevertFailed => {
                // A person must look: the journal does not claim a state for it.
                let rec = journal.change(cid).await.unwrap().unwrap();
                for d in rec.record["plan"]["diffs"].as_array().unwrap() {
                    let name = d["addr"].as_str().unwrap().rsplit('/').next().unwrap();
                    expected.insert(name.to_string(), None);
                }
                continue;
            }
            _ => continue,
        };
        for entry in entries.as_array().unwrap() {
            let addr = entry[0].as_str().unwrap();
            let name = addr.rsplit('/').next().unwrap().to_string();
            expected.insert(name, Some(essence(&entry[1])));
        }
    }
    let saved: BTreeMap<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(env.dir.path().join("store").join("sim-state.json"))
            .unwrap_or_else(|_| "{}".into()),
    )
    .unwrap();
    totals.needs_attention = 0;
    for (service, want) in &expected {
        let Some(want) = want else {
            totals.needs_attention += 1;
            continue;
        };
        let got = saved.get(service).map(essence);
        assert_eq!(
            got.as_ref(),
            Some(want),
            "round {round}: `{service}` in the world differs from the journal"
        );
        totals.compared += 1;
    }
    totals.applied = applied_per_change.len();
    totals.kinds = BTreeMap::new();
    for e in &events {
        *totals.kinds.entry(e.kind.as_str()).or_default() += 1;
    }
    totals.reverted = events
        .iter()
        .filter(|e| e.kind == EventKind::Reverted)
        .count();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_world_matches_the_journal_after_every_kill() {
    let rounds: u32 = std::env::var("AIRLOCK_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("AIRLOCK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let env = Env::new(&world(), EXTRA, 1).await;
    let mut rng = Rng(seed);
    let mut totals = Totals::default();
    let points = [
        "gate.before_apply",
        "gate.after_apply",
        "sim.apply.unsaved",
        "gate.before_restore",
        "gate.after_restore",
        "sim.restore.unsaved",
    ];
    let mut all_answers = Vec::new();
    for round in 1..=rounds {
        // Half the rounds die at a failpoint (the N-th time it is reached), the others
        // at a random moment.
        let mut vars = Vec::new();
        if round % 2 == 0 {
            let point = points[rng.below(points.len() as u64) as usize];
            vars.push((
                "AIRLOCK_FAILPOINTS",
                format!("{point}={}@crash", 1 + rng.below(3)),
            ));
        }
        let kill_after = Duration::from_millis(100 + rng.below(900));
        if let Some(mut server) = start(&env, &vars).await {
            if std::env::var("AIRLOCK_CRASH_DEBUG").is_ok() {
                eprintln!("round {round}: {vars:?}");
            }
            let loads: Vec<_> = SERVICES
                .iter()
                .map(|s| {
                    tokio::spawn(agent_load(
                        server.url.clone(),
                        env.bot.clone(),
                        s,
                        rng.next(),
                    ))
                })
                .collect();
            tokio::time::sleep(kill_after).await;
            if server.child.try_wait().unwrap().is_some() {
                assert!(
                    server.log().contains("crashing on purpose"),
                    "round {round}: the server died by itself:\n{}",
                    server.log()
                );
                totals.crashed_at_failpoint += 1;
            }
            server.kill();
            for l in loads {
                let answers = l.await.unwrap();
                totals.answers += answers.len();
                all_answers.extend(answers);
            }
        } else {
            totals.crashed_at_failpoint += 1;
        }
        // A clean start reconciles what the crash left; a graceful stop leaves it quiet.
        let mut clean = start(&env, &[])
            .await
            .expect("a server without failpoints starts");
        assert_eq!(clean.stop().await, Some(0), "{}", clean.log());
        if std::env::var("AIRLOCK_CRASH_DEBUG").is_ok() {
            eprintln!("{}", clean.log());
        }
        check(&env, &all_answers, &mut totals, round).await;
        totals.rounds += 1;
    }
    println!(
        "crash test: {} rounds ({} died at a failpoint), {} answers checked, {} changes applied, \
         {} reverted, {} outcomes reconciled after a crash, {} service states compared with the world \
         (0 mismatches), {} services left to a person at the end",
        totals.rounds,
        totals.crashed_at_failpoint,
        totals.answers,
        totals.applied,
        totals.reverted,
        totals.reconciled,
        totals.compared,
        totals.needs_attention
    );
    println!("journal at the end: {:?}", totals.kinds);
    assert_eq!(totals.rounds, rounds);
    assert!(
        totals.applied > 0 && totals.answers > 0,
        "the load did something"
    );
}
