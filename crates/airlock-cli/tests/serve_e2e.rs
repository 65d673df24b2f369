//! `airlock serve` end to end: the real binary on a free loopback port, driven over HTTP (as an
//! agent would) and through the operator subcommands (as a human would). Each test has a
//! directory, a journal and a server of its own; the sandbox cloud runs 20 simulated seconds
//! per real second and bakes last seconds, so a change goes from submitted to settled or
//! reverted while the test watches. Every wait is a bounded poll, never a fixed long sleep,
//! and every server is killed when its test ends, pass or fail.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

mod common;

use common::*;
use serde_json::{Value, json};

/// A directory running [`WORLD`].
async fn env(window_s: u64) -> Env {
    Env::new(WORLD, "", window_s).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_delete_is_approved_then_applied_and_ends_unjudged() {
    let env = env(3).await;
    let server = env.serve(&[]).await;

    let (status, held) = server
        .post(
            "/v1/actions",
            &env.bot,
            &action("delete", "scratch", json!({})),
        )
        .await;
    assert_eq!(status, 202, "{held}");
    assert_eq!(held["verdict"], "hold", "{held}");
    assert_eq!(held["status"], "held", "{held}");
    assert_eq!(
        held["reasons"],
        json!(["prod-destructive-needs-approval"]),
        "{held}"
    );
    let action_id = text(&held["id"]);
    let approval = text(&held["approval_id"]);
    // Held means nothing happened yet.
    assert_eq!(server.describe(&env.bot, "scratch").await["exists"], true);

    let pending = env.operator(&server, &["approvals"]).await.code(0).json();
    assert!(
        pending["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == approval),
        "{pending}"
    );

    let approved = env
        .operator(
            &server,
            &["approve", approval, "--reason", "scratch is unused"],
        )
        .await
        .code(0)
        .json();
    assert_eq!(approved["verdict"], "allow", "{approved}");
    assert_eq!(approved["status"], "baking", "{approved}");
    assert_eq!(approved["id"], action_id, "{approved}");
    let change = text(&approved["change_id"]);
    assert_eq!(server.describe(&env.bot, "scratch").await["exists"], false);

    // A 3 s bake, polled every 200 ms: over well within 15 s. `scratch` serves no traffic,
    // so no rule could be judged on data: the change ends `unjudged`, never `settled`.
    let done = server.wait_for(&env.bot, action_id, &FINAL, 150).await;
    assert_eq!(done["status"], "unjudged", "{done}");
    assert_eq!(done["change_id"], change, "{done}");
    assert_eq!(done["approval_id"], approval, "{done}");
    let unjudged = server.events(&env.op, "unjudged", change).await;
    assert_eq!(unjudged.len(), 1);
    assert!(
        text(&unjudged[0]["payload"]["reason"]).contains("`scratch`"),
        "{unjudged:?}"
    );
    assert!(server.events(&env.op, "settled", change).await.is_empty());
    assert_eq!(server.describe(&env.bot, "scratch").await["exists"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_deploy_breaches_its_bake_and_is_reverted_automatically() {
    let env = env(3).await;
    let server = env.serve(&[]).await;

    let v = server.bad_deploy_reverted(&env.bot, "web").await;
    let change = text(&v["change_id"]);
    let action_id = text(&v["id"]);

    let breaches = server.events(&env.op, "breach", change).await;
    assert_eq!(breaches.len(), 1, "{breaches:?}");
    let breach = &breaches[0];
    assert_eq!(breach["payload"]["service"], "web", "{breach}");
    assert!(
        text(&breach["payload"]["rule"]).contains("availability"),
        "{breach}"
    );
    assert_eq!(breach["action_id"], action_id, "{breach}");

    let reverts = server.events(&env.op, "reverted", change).await;
    assert_eq!(reverts.len(), 1, "{reverts:?}");
    let revert = &reverts[0];
    assert_eq!(revert["payload"]["by"], "airlock", "{revert}");
    assert_eq!(revert["action_id"], action_id, "{revert}");
    assert!(
        revert["seq"].as_i64() > breach["seq"].as_i64(),
        "the revert comes after the breach: {breach} {revert}"
    );
    assert_eq!(server.describe(&env.bot, "web").await["version"], "v1");
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_reverts_every_change_of_an_agent_session() {
    let env = env(3).await;
    let server = env.serve(&[]).await;

    let first = server.applied(&env.bot, &scale("web", 5)).await;
    let second = server.applied(&env.bot, &scale("api", 5)).await;
    assert_eq!(
        server.describe(&env.bot, "web").await["replicas_desired"],
        5
    );
    assert_eq!(
        server.describe(&env.bot, "api").await["replicas_desired"],
        5
    );

    let out = env
        .operator(&server, &["undo", "--agent", "bot", "--since", "10m"])
        .await
        .code(0)
        .json();
    assert_eq!(out["reverted"], 2, "{out}");
    assert_eq!(out["stopped_on_conflict"], false, "{out}");
    // Newest first.
    let order: Vec<&Value> = out["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["change_id"])
        .collect();
    assert_eq!(order, [&second["change_id"], &first["change_id"]], "{out}");

    for d in [&first, &second] {
        let v = server.wait_for(&env.bot, text(&d["id"]), &FINAL, 1).await;
        assert_eq!(v["status"], "reverted", "{v}");
    }
    assert_eq!(
        server.describe(&env.bot, "web").await["replicas_desired"],
        4
    );
    assert_eq!(
        server.describe(&env.bot, "api").await["replicas_desired"],
        4
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kill_switch_denies_mutations_and_lets_reads_through() {
    let env = env(3).await;
    let server = env.serve(&[]).await;

    env.operator(&server, &["killswitch", "on"]).await.code(0);
    assert_eq!(
        server.get("/v1/killswitch", &env.op).await["killswitch"],
        "on"
    );
    let (status, v) = server.post("/v1/actions", &env.bot, &scale("web", 5)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verdict"], "deny", "{v}");
    assert_eq!(v["status"], "denied", "{v}");
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("killswitch")),
        "{v}"
    );
    assert!(v["change_id"].is_null(), "{v}");
    let web = server.describe(&env.bot, "web").await;
    assert_eq!(web["replicas_desired"], 4, "{web}");

    env.operator(&server, &["killswitch", "off"]).await.code(0);
    assert_eq!(
        server.get("/v1/killswitch", &env.op).await["killswitch"],
        "off"
    );
    server.applied(&env.bot, &scale("web", 5)).await;
    assert_eq!(
        server.describe(&env.bot, "web").await["replicas_desired"],
        5
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_in_the_middle_of_a_bake_resumes_it_without_applying_twice() {
    // A 30 s bake: long enough to kill and restart the server well inside it.
    let env = env(30).await;
    let store = env.store();
    let mut first = env.serve(&[]).await;
    let d = first.applied(&env.bot, &scale("web", 6)).await;
    let action_id = text(&d["id"]).to_string();
    let change = text(&d["change_id"]).to_string();
    assert_eq!(
        first.get(&format!("/v1/changes/{change}"), &env.op).await["status"],
        "baking"
    );
    first.kill();

    // What the crash left: the world as applied, and an intact journal.
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(env.dir.path().join("store").join("sim-state.json")).unwrap(),
    )
    .unwrap();
    let total: u64 = saved["web"]["replicas"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, 6, "{saved}");
    let report = env
        .airlock(&["journal", "verify", "--store", &store, "--json"])
        .await
        .code(0)
        .json();
    assert_eq!(report["ok"], true, "{report}");

    let mut second = env.serve(&[]).await;
    assert!(
        second.log().contains("resumed baking changes"),
        "{}",
        second.log()
    );
    // Still baking: resumed, not settled on the spot and not reverted for the restart.
    assert_eq!(
        second.get(&format!("/v1/changes/{change}"), &env.op).await["status"],
        "baking"
    );
    assert_eq!(
        second.describe(&env.bot, "web").await["replicas_desired"],
        6
    );

    // The window ends 30 s after the apply; 45 s of polls leave room for a slow machine.
    let done = second.wait_for(&env.bot, &action_id, &FINAL, 450).await;
    // Nothing in this world can breach a scale-up (no noise, half the capacity in use, the
    // world reloaded warm), so a revert here would be the restart's doing.
    assert_eq!(
        done["status"],
        "settled",
        "{done}\n--- stderr\n{}",
        second.log()
    );
    assert_eq!(second.events(&env.op, "applied", &change).await.len(), 1);
    assert_eq!(second.events(&env.op, "settled", &change).await.len(), 1);
    assert_eq!(
        second.describe(&env.bot, "web").await["replicas_desired"],
        6
    );

    assert_eq!(second.stop().await, Some(0), "{}", second.log());
    let report = env
        .airlock(&["journal", "verify", "--store", &store, "--json"])
        .await
        .code(0)
        .json();
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn log_format_json_writes_json_log_lines() {
    let env = env(3).await;
    let mut server = env.serve(&["--log-format", "json"]).await;
    server.kill();
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("airlock listening"))
        .unwrap_or_else(|| panic!("no `airlock listening` line\n--- stderr\n{log}"));
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n--- stderr\n{log}"));
    assert_eq!(v["level"], "INFO", "{v}");
    assert_eq!(v["fields"]["message"], "airlock listening", "{v}");
}

/// Regression: `airlock serve` printed every start-up error's detail twice (the message
/// repeated its source, and the whole chain is printed), e.g. `cannot listen on A: Address
/// already in use (os error 98): Address already in use (os error 98)`.
#[tokio::test(flavor = "multi_thread")]
async fn a_port_in_use_is_reported_once_with_its_address() {
    let env = env(3).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let config = env.config.display().to_string();
    let out = env
        .airlock(&["serve", "--config", &config, "--listen", &addr])
        .await
        .code(1);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line\n{out}"));
    assert!(
        line.contains(&format!("cannot listen on {addr}: ")),
        "{out}"
    );
    assert_eq!(line.matches("in use").count(), 1, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn show_tells_how_a_bad_deploy_was_caught_and_reverted() {
    let env = env(3).await;
    let server = env.serve(&[]).await;
    let v = server.bad_deploy_reverted(&env.bot, "web").await;
    let change = text(&v["change_id"]);

    let t = env
        .operator(&server, &["show", change])
        .await
        .code(0)
        .json();
    assert_eq!(t["change_id"], change, "{t}");
    assert_eq!(t["agent"], "bot", "{t}");
    assert_eq!(t["status"], "reverted", "{t}");
    let applied = t["applied_at"].as_i64().unwrap();
    let detected = t["detected_at"].as_i64().unwrap();
    let reverted = t["reverted_at"].as_i64().unwrap();
    assert!(applied <= detected && detected <= reverted, "{t}");
    assert!(t["time_to_mitigate_ms"].as_i64().unwrap() >= 0, "{t}");
    let entries = t["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries.iter().map(|e| text(&e["kind"])).collect();
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(at("breach") < at("reverted"), "{t}");
    let breach = &entries[at("breach")];
    assert!(
        text(&breach["summary"]).starts_with("breach on web: availability"),
        "{breach}"
    );
    assert_eq!(
        text(&entries[at("reverted")]["summary"]).split(':').next(),
        Some("reverted by airlock"),
        "{t}"
    );

    // The readable form, from the server and from the store the server writes.
    let url = server.url.clone();
    let human = env
        .airlock(&["show", change, "--url", &url, "--token", &env.op])
        .await
        .code(0);
    for want in ["reverted by airlock", "breach on web", "time to mitigate"] {
        assert!(human.stdout.contains(want), "{want}\n{human}");
    }
    let store = env.store();
    let local = env
        .airlock(&["show", change, "--store", &store])
        .await
        .code(0);
    assert!(local.stdout.contains("reverted by airlock"), "{local}");

    // An unknown change is bad input either way.
    env.airlock(&["show", "chg_nope", "--url", &url, "--token", &env.op])
        .await
        .code(2);
    let out = env
        .airlock(&["show", "chg_nope", "--store", &store])
        .await
        .code(2);
    assert!(out.stderr.contains("unknown change `chg_nope`"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_probe_judges_a_service_and_a_failing_probe_reverts_the_change() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // The service's health endpoint, which the test can break.
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let flag = flag.clone();
            async move {
                if flag.load(Ordering::SeqCst) {
                    (axum::http::StatusCode::OK, "ok")
                } else {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let extra = format!("[[probe]]\nservice = \"api\"\nurl = \"{url}\"\nrequests_per_poll = 5\n");
    let env = Env::new(WORLD, &extra, 6).await;
    let server = env.serve(&[]).await;
    let v = server.applied(&env.bot, &scale("api", 5)).await;
    // The service breaks right after the change; only the probe can see it.
    healthy.store(false, Ordering::SeqCst);
    let done = server.wait_for(&env.bot, text(&v["id"]), &FINAL, 200).await;
    assert_eq!(done["status"], "reverted", "{done}\n{}", server.log());
    let change = text(&v["change_id"]);
    let breach = &server.events(&env.op, "breach", change).await[0];
    assert_eq!(breach["payload"]["service"], "api", "{breach}");
    assert!(
        text(&breach["payload"]["rule"]).contains("availability"),
        "{breach}"
    );
}

/// A hold outlives the server that made it: after a restart it is listed again and an
/// operator's approval applies it (and a second approval finds it answered).
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_approval_survives_a_restart_and_is_approved_after_it() {
    let env = env(3).await;
    let mut server = env.serve(&[]).await;
    let (status, held) = server
        .post(
            "/v1/actions",
            &env.bot,
            &action("delete", "scratch", json!({})),
        )
        .await;
    assert_eq!(status, 202, "{held}");
    let approval = text(&held["approval_id"]).to_string();
    let action_id = text(&held["id"]).to_string();
    assert_eq!(server.stop().await, Some(0), "{}", server.log());
    drop(server);

    let server = env.serve(&[]).await;
    let pending = env.operator(&server, &["approvals"]).await.code(0).json();
    let listed: Vec<&Value> = pending["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == approval.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{pending}");
    assert_eq!(listed[0]["action_id"], action_id.as_str(), "{pending}");
    assert_eq!(listed[0]["agent"], "bot", "{pending}");
    assert_eq!(
        listed[0]["reasons"],
        json!(["prod-destructive-needs-approval"]),
        "{pending}"
    );
    let approved = env
        .operator(
            &server,
            &["approve", &approval, "--reason", "after the restart"],
        )
        .await
        .code(0)
        .json();
    assert_eq!(approved["verdict"], "allow", "{approved}");
    assert_eq!(approved["status"], "baking", "{approved}");
    assert_eq!(approved["id"], action_id.as_str(), "{approved}");
    assert_eq!(server.describe(&env.bot, "scratch").await["exists"], false);
    // Answered once: a second answer finds nothing pending.
    let again = env
        .operator(&server, &["approve", &approval, "--reason", "twice"])
        .await;
    assert_ne!(again.code, Some(0), "{again}");
}
