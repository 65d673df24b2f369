//! Several `airlock serve` replicas sharing one PostgreSQL journal (the throwaway server
//! `scripts/test.sh` starts): a hold created on one is approved on another; the kill switch
//! set on one stops mutations on another; a restart of every replica keeps pending approvals
//! approvable; many agents submitting concurrently to random replicas never get more than
//! their limits allow, counted in the journal, whose chain stays whole.
#![cfg(test)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `n` directories running [`WORLD`] on one fresh shared database, with the same tokens.
async fn replicas(n: usize, window_s: u64) -> Vec<Env> {
    let url = airlock_store::testing::postgres_database().await;
    let first = Env::on_store(WORLD, window_s, &url, None).await;
    let (op, bot) = (first.op.clone(), first.bot.clone());
    let mut all = vec![first];
    for _ in 1..n {
        all.push(Env::on_store(WORLD, window_s, &url, Some((&op, &bot))).await);
    }
    all
}

fn reasons(v: &Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_from_one_replica_is_approved_on_another_and_the_kill_switch_reaches_all() {
    let envs = replicas(3, 3).await;
    let (a, b, c) = (&envs[0], &envs[1], &envs[2]);
    let sa = a.serve(&[]).await;
    let sb = b.serve(&[]).await;
    let sc = c.serve(&[]).await;

    // Held on A …
    let (status, held) = sa
        .post(
            "/v1/actions",
            &a.bot,
            &action("delete", "scratch", json!({})),
        )
        .await;
    assert_eq!(status, 202, "{held}");
    let approval = text(&held["approval_id"]).to_string();
    let action_id = text(&held["id"]).to_string();
    // … listed on B, approved on B, applied there once.
    let pending = b.operator(&sb, &["approvals"]).await.code(0).json();
    assert!(
        pending["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == approval.as_str()),
        "{pending}"
    );
    let approved = b
        .operator(&sb, &["approve", &approval, "--reason", "from B"])
        .await
        .code(0)
        .json();
    assert_eq!(approved["verdict"], "allow", "{approved}");
    assert_eq!(approved["id"], action_id.as_str(), "{approved}");
    // Answered once, on every replica: C finds nothing pending.
    let again = c
        .operator(&sc, &["approve", &approval, "--reason", "from C"])
        .await;
    assert_ne!(again.code, Some(0), "{again}");

    // The kill switch set on A stops a mutation submitted to C right after.
    a.operator(&sa, &["killswitch", "on"]).await.code(0);
    let (status, v) = sc.post("/v1/actions", &c.bot, &scale("web", 5)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verdict"], "deny", "{v}");
    assert!(reasons(&v).contains(&"killswitch".to_string()), "{v}");
    a.operator(&sa, &["killswitch", "off"]).await.code(0);
    let (_, v) = sc.post("/v1/actions", &c.bot, &scale("web", 5)).await;
    assert_eq!(v["verdict"], "allow", "{v}");

    // The delete approved on B spent the bot's budget of deletes on every replica.
    let (_, v) = sc
        .post(
            "/v1/actions",
            &c.bot,
            &action("delete", "scratch", json!({})),
        )
        .await;
    assert_eq!(v["verdict"], "deny", "{v}");
    assert!(
        reasons(&v).contains(&"blast-budget-destructive".to_string()),
        "{v}"
    );

    // A hold made on C (by another agent), then every replica restarts: it is still
    // approvable, on A.
    let bot2 = a
        .airlock(&["token", "create", "--agent", "bot2", "--store", &a.store()])
        .await
        .code(0)
        .stdout
        .trim()
        .to_string();
    let (status, held) = sc
        .post(
            "/v1/actions",
            &bot2,
            &action("delete", "scratch", json!({})),
        )
        .await;
    assert_eq!(status, 202, "{held}");
    let approval = text(&held["approval_id"]).to_string();
    let mut servers = vec![sa, sb, sc];
    for s in &mut servers {
        assert_eq!(s.stop().await, Some(0), "{}", s.log());
    }
    drop(servers);
    let sa = a.serve(&[]).await;
    let _sb = b.serve(&[]).await;
    let approved = a
        .operator(&sa, &["approve", &approval, "--reason", "after restarts"])
        .await
        .code(0)
        .json();
    assert_eq!(approved["verdict"], "allow", "{approved}");

    // One chain, no forks or gaps.
    a.airlock(&["journal", "verify", "--store", &a.store()])
        .await
        .code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_agents_on_random_replicas_never_exceed_their_rate_limit() {
    const AGENTS: usize = 100;
    const EACH: usize = 13;
    let envs = replicas(3, 3).await;
    let servers = vec![
        envs[0].serve(&[]).await,
        envs[1].serve(&[]).await,
        envs[2].serve(&[]).await,
    ];
    let mut tokens = Vec::new();
    for i in 0..AGENTS {
        let name = format!("agent-{i:03}");
        let token = envs[0]
            .airlock(&[
                "token",
                "create",
                "--agent",
                &name,
                "--store",
                &envs[0].store(),
            ])
            .await
            .code(0)
            .stdout
            .trim()
            .to_string();
        tokens.push((name, token));
    }
    let servers = std::sync::Arc::new(servers);
    let mut tasks = Vec::new();
    for (i, (_, token)) in tokens.iter().enumerate() {
        for k in 0..EACH {
            let servers = servers.clone();
            let token = token.clone();
            // A fixed spread over the replicas, different for each agent.
            let r = (i * 7 + k * 5) % servers.len();
            tasks.push(tokio::spawn(async move {
                let replicas = 2 + (k % 5) as u32;
                servers[r]
                    .post("/v1/actions", &token, &scale("api", replicas))
                    .await
            }));
        }
    }
    let mut answered = 0;
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert!(status == 200 || status == 202, "{status} {v}");
        answered += 1;
    }
    assert_eq!(answered, AGENTS * EACH);
    // Counted in the journal: per agent, the mutations the rate limit let through.
    let journal = envs[1].journal().await;
    let mut passed: BTreeMap<String, usize> = BTreeMap::new();
    let mut limited: BTreeMap<String, usize> = BTreeMap::new();
    for ev in &journal {
        if ev["kind"] != "verdict" {
            continue;
        }
        let Some(agent) = ev["agent"].as_str() else {
            continue;
        };
        if !agent.starts_with("agent-") {
            continue;
        }
        if reasons(&ev["payload"]).iter().any(|r| r == "rate-limit") {
            *limited.entry(agent.to_string()).or_default() += 1;
        } else {
            *passed.entry(agent.to_string()).or_default() += 1;
        }
    }
    for (name, _) in &tokens {
        // 12 a minute (the default), 13 asked within the minute: exactly one refused.
        assert_eq!(passed.get(name), Some(&12), "{name}: {passed:?}");
        assert_eq!(limited.get(name), Some(&1), "{name}: {limited:?}");
    }
    envs[2]
        .airlock(&["journal", "verify", "--store", &envs[2].store()])
        .await
        .code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bake_of_a_killed_replica_is_taken_over_and_resolved_exactly_once() {
    // Bakes of 6 s: long enough to kill the replica in the middle of one.
    let envs = replicas(2, 6).await;
    let (a, b) = (&envs[0], &envs[1]);
    let mut sa = a.serve(&[]).await;
    let sb = b.serve(&[]).await;
    let applied = sa.applied(&a.bot, &scale("web", 5)).await;
    let change = text(&applied["change_id"]).to_string();
    let action_id = text(&applied["id"]).to_string();
    sa.kill();
    // B takes it over and judges it to the end.
    let done = sb
        .wait_for(
            &b.bot,
            &action_id,
            &["settled", "unjudged", "reverted"],
            300,
        )
        .await;
    assert_eq!(done["change_id"], change.as_str(), "{done}");
    let journal = b.journal().await;
    let about: Vec<&Value> = journal
        .iter()
        .filter(|e| e["change_id"] == change.as_str())
        .collect();
    let count = |kind: &str| about.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!(count("applied"), 1, "{about:#?}");
    assert_eq!(count("takeover"), 1, "{about:#?}");
    assert_eq!(
        count("settled") + count("unjudged") + count("reverted"),
        1,
        "resolved exactly once: {about:#?}"
    );
    let takeover = about.iter().find(|e| e["kind"] == "takeover").unwrap();
    assert_ne!(takeover["payload"]["owner"], takeover["payload"]["from"]);
    b.airlock(&["journal", "verify", "--store", &b.store()])
        .await
        .code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_cut_short_by_a_dead_replica_is_settled_once_by_another() {
    let envs = replicas(2, 3).await;
    let (a, b) = (&envs[0], &envs[1]);
    // A dies right after the provider applied, before the outcome is journaled.
    let sa = a
        .serve_with_env(&[], &[("AIRLOCK_FAILPOINTS", "gate.after_apply=1@crash")])
        .await;
    let sb = b.serve(&[]).await;
    let url = format!("{}/v1/actions", sa.url);
    let token = a.bot.clone();
    // The answer never comes: the replica is gone.
    let lost = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&scale("web", 5))
        .send()
        .await;
    assert!(lost.is_err(), "the replica answered: {lost:?}");
    let mut intent = None;
    for _ in 0..100 {
        let journal = b.journal().await;
        intent = journal
            .iter()
            .find(|e| e["kind"] == "applying")
            .and_then(|e| e["change_id"].as_str().map(String::from));
        if intent.is_some() {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let change = intent.expect("the intent was journaled before the crash");
    // B takes the unfinished apply over and records its outcome, once.
    let mut about = Vec::new();
    for _ in 0..150 {
        let journal = b.journal().await;
        about = journal
            .into_iter()
            .filter(|e| e["change_id"] == change.as_str())
            .collect::<Vec<Value>>();
        if about
            .iter()
            .any(|e| e["kind"] == "applied" || e["kind"] == "apply_failed")
        {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let count = |kind: &str| about.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!(count("takeover"), 1, "{about:#?}\n{}", sb.log());
    assert_eq!(count("applying"), 1, "applied once: {about:#?}");
    assert_eq!(
        count("applied") + count("apply_failed"),
        1,
        "one outcome: {about:#?}"
    );
    b.airlock(&["journal", "verify", "--store", &b.store()])
        .await
        .code(0);
}

/// The `id`s of the SSE events `url` sends within `for_ms`, resuming after `last`.
async fn sse_ids(url: String, token: String, last: i64, for_ms: u64) -> Vec<i64> {
    let mut resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .header("Last-Event-ID", last.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let mut text = String::new();
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(for_ms);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until, resp.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|id| id.trim().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_replica_streams_every_event_in_order_and_resumes_any_stream() {
    let envs = replicas(2, 3).await;
    let (a, b) = (&envs[0], &envs[1]);
    let sa = a.serve(&[]).await;
    let sb = b.serve(&[]).await;
    // B streams from the start while A and B both journal.
    let stream = tokio::spawn(sse_ids(
        format!("{}/v1/events", sb.url),
        b.op.clone(),
        0,
        6000,
    ));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // Reads on both at once (not serialized across replicas: B stores its own while A's
    // are still on their way to it), and mutations.
    let bodies: Vec<Value> = (0..30u32)
        .map(|i| {
            if i % 5 == 0 {
                scale("api", 2 + i % 3)
            } else {
                action("read", "web", json!({}))
            }
        })
        .collect();
    let mut load = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let server = if i % 2 == 0 { &sa } else { &sb };
        load.push(server.post("/v1/actions", &a.bot, body));
    }
    for (status, v) in futures_util::future::join_all(load).await {
        assert!(status == 200 || status == 202, "{v}");
    }
    let seen = stream.await.unwrap();
    let journal = b.journal().await;
    let head = journal.last().unwrap()["seq"].as_i64().unwrap();
    // Every event, each once, in order: A's as well as B's.
    let want: Vec<i64> = (1..=seen.last().copied().unwrap_or(0)).collect();
    assert_eq!(seen, want, "B's stream");
    assert!(
        seen.len() as i64 >= head - 2,
        "B's stream stopped at {:?} of {head}",
        seen.last()
    );
    // A stream resumed on the other replica picks up right after where B's left off.
    let resumed = sse_ids(format!("{}/v1/events", sa.url), a.op.clone(), 5, 1500).await;
    assert_eq!(resumed.first(), Some(&6), "{resumed:?}");
    assert!(resumed.windows(2).all(|w| w[1] == w[0] + 1), "{resumed:?}");
}
