//! The HTTP API end to end without a socket: `app(state).oneshot(request)` over the state
//! `live::build` makes from a config — the real SQLite journal in a temp dir, the default
//! Cedar pack and the live sandbox cloud (the built-in `cost-cutter-cascade` world: checkout,
//! search, payments (critical), feature-flags and reports, all in prod).
//!
//! Every endpoint and every auth rule is exercised, asserting status codes and JSON bodies.
//! The sim does not tick on its own here (no background task runs): tests tick it and call
//! `gate.poll()` themselves, so plans stay stable between a hold and its approval.
// Marks the whole file as test code, so helpers outside `#[test]` fns may unwrap too.
#![cfg(test)]

use airlock_core::EventKind;
use airlock_gate::{BakeOutcome, PrincipalKind2};
use airlock_server::config::Config;
use airlock_server::{AppState, RawConfig, app};
use airlock_sim::{SimHandle, testing};
use airlock_store::{EventQuery, Journal};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;
use tower::ServiceExt;

/// A server's state over a fresh journal, with an operator `op`, a second operator `op2`
/// and an agent `bot` registered.
struct Harness {
    _dir: TempDir,
    state: AppState,
    sim: SimHandle,
    router: Router,
    op: String,
    op2: String,
    bot: String,
}

/// One answer: status, headers, the body as text and, when it parses, as JSON.
#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

/// The documented default config with its journal in `dir`, the built-in world plus an idle
/// leaf `scratch` and a version `bad` that fails 30% of requests.
fn config(dir: &Path) -> Config {
    let mut c = RawConfig::default().validate(Path::new(".")).unwrap();
    c.store = dir.join("j.db").display().to_string();
    let sim = c.sim.as_mut().unwrap();
    // The world starts at the wall clock's time of day: without its daily swing, what the
    // headroom forecast expects (and so what passes) does not depend on when tests run.
    for s in &mut sim.world.services {
        s.demand.diurnal_amplitude = 0.0;
    }
    // A prod service nobody calls and that serves no traffic: deleting it has no live
    // dependents and no headroom to protect, so the default pack holds it for an operator.
    let scratch = testing::service("scratch")
        .region("eu-west")
        .replicas(2)
        .rps(0.0);
    sim.world.services.push(scratch.build());
    sim.world
        .versions
        .push(testing::failing_version("bad", 0.3));
    c
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

async fn harness_with(edit: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    edit(&mut c);
    let (state, sim) = airlock_server::live::build(&c).await.unwrap();
    let op = state
        .gate
        .issue_token("op", PrincipalKind2::Operator)
        .await
        .unwrap();
    let op2 = state
        .gate
        .issue_token("op2", PrincipalKind2::Operator)
        .await
        .unwrap();
    let bot = state
        .gate
        .issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    Harness {
        _dir: dir,
        router: app(state.clone()),
        state,
        sim: sim.unwrap(),
        op,
        op2,
        bot,
    }
}

fn request(method: Method, uri: &str, token: Option<&str>, body: Body) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(body).unwrap()
}

async fn send(router: &Router, req: Request<Body>) -> Resp {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        json,
    }
}

impl Harness {
    async fn raw(&self, method: Method, uri: &str, token: Option<&str>, body: Body) -> Resp {
        send(&self.router, request(method, uri, token, body)).await
    }
    async fn get(&self, uri: &str, token: &str) -> Resp {
        self.raw(Method::GET, uri, Some(token), Body::empty()).await
    }
    async fn post(&self, uri: &str, token: &str, body: Value) -> Resp {
        self.raw(Method::POST, uri, Some(token), Body::from(body.to_string()))
            .await
    }
    async fn submit(&self, token: &str, body: Value) -> Resp {
        self.post("/v1/actions", token, body).await
    }
    fn tick(&self, n: usize) {
        let mut sim = self.sim.lock().unwrap();
        for _ in 0..n {
            sim.tick();
        }
    }
    fn replicas(&self, service: &str) -> u32 {
        self.sim.lock().unwrap().desired(service).unwrap().total()
    }
    /// Every event in the journal, oldest first.
    async fn events(&self) -> Vec<airlock_core::Event> {
        self.state
            .journal
            .read(EventQuery::default())
            .await
            .unwrap()
    }
}

fn read(service: &str) -> Value {
    json!({"provider": "sim", "verb": "read", "target": format!("sim:service/{service}")})
}

fn scale(service: &str, replicas: u32) -> Value {
    json!({"provider": "sim", "verb": "scale", "target": format!("sim:service/{service}"),
           "params": {"replicas": replicas}, "intent": "test"})
}

fn delete(target: &str) -> Value {
    json!({"provider": "sim", "verb": "delete", "target": target, "intent": "clean up"})
}

/// The error envelope every API error uses.
#[track_caller]
fn assert_error(r: &Resp, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"]["code"], code, "{}", r.text);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        r.text
    );
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Unauthenticated endpoints

#[tokio::test]
async fn health_readiness_and_openapi_need_no_token() {
    let h = harness().await;
    let r = h.raw(Method::GET, "/healthz", None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({"status": "ok"}));
    let r = h.raw(Method::GET, "/readyz", None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({"status": "ready"}));
    let r = h
        .raw(Method::GET, "/openapi.json", None, Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(serde_json::from_str::<Value>(&r.text).is_ok(), "{}", r.text);
    let r = h
        .raw(Method::GET, "/v1/nowhere", Some(&h.op), Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .raw(Method::DELETE, "/v1/killswitch", Some(&h.op), Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn metrics_are_openmetrics_with_decisions_holds_breakers_and_the_killswitch() {
    let h = harness().await;
    let r = h.raw(Method::GET, "/metrics", None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(r.text.trim_end().ends_with("# EOF"), "{}", r.text);
    assert!(r.text.contains("airlock_pending_holds 0"), "{}", r.text);
    assert!(r.text.contains("airlock_killswitch 0"), "{}", r.text);
    assert!(r.text.contains("airlock_journal_writable 1"), "{}", r.text);
    assert!(
        r.text.contains("airlock_journal_write_failures 0"),
        "{}",
        r.text
    );

    assert_eq!(
        h.submit(&h.bot, read("checkout")).await.json["verdict"],
        "allow"
    );
    assert_eq!(
        h.submit(&h.bot, delete("sim:service/scratch")).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        h.post("/v1/killswitch", &h.op, json!({"state": "on"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.post("/v1/agents/bot/freeze", &h.op, json!({}))
            .await
            .status,
        StatusCode::OK
    );

    let r = h.raw(Method::GET, "/metrics", None, Body::empty()).await;
    assert!(
        r.text
            .contains(r#"airlock_decisions_total{verdict="allow",agent="bot"} 1"#),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains(r#"airlock_decisions_total{verdict="hold",agent="bot"} 1"#),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("airlock_decision_seconds_count 2"),
        "{}",
        r.text
    );
    assert!(r.text.contains("airlock_pending_holds 1"), "{}", r.text);
    assert!(r.text.contains("airlock_killswitch 1"), "{}", r.text);
    assert!(
        r.text.contains(r#"airlock_breaker_open{agent="bot"} 1"#),
        "{}",
        r.text
    );
}

// ---------------------------------------------------------------------------------------
// Authentication and authorization

#[tokio::test]
async fn every_v1_endpoint_needs_a_bearer_token() {
    let h = harness().await;
    let endpoints = [
        (Method::POST, "/v1/actions"),
        (Method::GET, "/v1/actions"),
        (Method::GET, "/v1/actions/act_x"),
        (Method::GET, "/v1/approvals"),
        (Method::POST, "/v1/approvals/apr_x"),
        (Method::GET, "/v1/changes/chg_x"),
        (Method::POST, "/v1/changes/chg_x/revert"),
        (Method::POST, "/v1/undo"),
        (Method::POST, "/v1/agents/bot/freeze"),
        (Method::POST, "/v1/agents/bot/unfreeze"),
        (Method::POST, "/v1/killswitch"),
        (Method::GET, "/v1/killswitch"),
        (Method::POST, "/v1/tokens"),
        (Method::POST, "/v1/tokens/bot/revoke"),
        (Method::GET, "/v1/events"),
        (Method::GET, "/v1/journal"),
    ];
    for (method, uri) in endpoints {
        let r = h.raw(method.clone(), uri, None, Body::from("{}")).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
        assert_eq!(
            r.headers[header::WWW_AUTHENTICATE],
            "Bearer",
            "{method} {uri}"
        );
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer"),
            "{}",
            r.text
        );

        let r = h
            .raw(
                method.clone(),
                uri,
                Some("alk_not-a-token"),
                Body::from("{}"),
            )
            .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
        assert_eq!(
            r.headers[header::WWW_AUTHENTICATE],
            "Bearer",
            "{method} {uri}"
        );
    }
    // Another scheme, or an empty bearer, is no token either.
    let req = Request::builder()
        .uri("/v1/killswitch")
        .header(header::AUTHORIZATION, format!("Basic {}", h.op))
        .body(Body::empty())
        .unwrap();
    assert_error(
        &send(&h.router, req).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let req = Request::builder()
        .uri("/v1/killswitch")
        .header(header::AUTHORIZATION, "Bearer   ")
        .body(Body::empty())
        .unwrap();
    assert_error(
        &send(&h.router, req).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[tokio::test]
async fn agents_are_forbidden_every_operator_endpoint() {
    let h = harness().await;
    let hold = h.submit(&h.bot, delete("sim:service/scratch")).await;
    let apr = hold.json["approval_id"].as_str().unwrap().to_string();
    let changed = h.submit(&h.bot, scale("search", 11)).await;
    let chg = changed.json["change_id"].as_str().unwrap().to_string();
    let calls = [
        (Method::GET, "/v1/approvals".to_string(), json!(null)),
        (
            Method::POST,
            format!("/v1/approvals/{apr}"),
            json!({"decision": "approve", "reason": "me"}),
        ),
        (Method::POST, format!("/v1/changes/{chg}/revert"), json!({})),
        (
            Method::POST,
            "/v1/undo".to_string(),
            json!({"agent": "bot", "since": "1h"}),
        ),
        (Method::POST, "/v1/agents/bot/freeze".to_string(), json!({})),
        (
            Method::POST,
            "/v1/agents/bot/unfreeze".to_string(),
            json!({}),
        ),
        (
            Method::POST,
            "/v1/killswitch".to_string(),
            json!({"state": "on"}),
        ),
        (Method::GET, "/v1/journal".to_string(), json!(null)),
        (Method::GET, "/v1/events".to_string(), json!(null)),
        (
            Method::POST,
            "/v1/tokens".to_string(),
            json!({"name": "bot", "kind": "operator"}),
        ),
        (Method::POST, "/v1/tokens/op/revoke".to_string(), json!({})),
    ];
    for (method, uri, body) in calls {
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let r = h.raw(method.clone(), &uri, Some(&h.bot), body).await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`bot`"),
            "{method} {uri}: {}",
            r.text
        );
    }
    // Nothing the agent tried took effect.
    assert_eq!(
        h.get("/v1/approvals", &h.op).await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.get(&format!("/v1/changes/{chg}"), &h.op).await.json["status"],
        "baking"
    );
    assert_eq!(
        h.get("/v1/killswitch", &h.op).await.json,
        json!({"killswitch": "off"})
    );
    assert!(h.state.gate.breaker("bot").await.is_none());
    assert_eq!(h.replicas("search"), 11);
    assert!(h.state.gate.authenticate(&h.op).await.is_ok());
}

#[tokio::test]
async fn operators_cannot_submit_actions() {
    let h = harness().await;
    let before = h.events().await.len();
    let r = h.submit(&h.op, read("checkout")).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("submitted by agents"),
        "{}",
        r.text
    );
    assert_eq!(
        h.events().await.len(),
        before,
        "a refused caller leaves no request in the journal"
    );
}

#[tokio::test]
async fn tokens_are_created_by_operators_and_stop_working_when_revoked() {
    let h = harness().await;
    let r = h
        .post(
            "/v1/tokens",
            &h.op,
            json!({"name": "bot2", "kind": "agent"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["name"], "bot2");
    assert_eq!(r.json["kind"], "agent");
    let bot2 = r.json["token"].as_str().unwrap().to_string();
    assert!(bot2.starts_with("alk_"), "{bot2}");
    let r = h.submit(&bot2, read("search")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["agent"], "bot2");

    // An operator cannot make another operator (or an admin): one person could then give
    // both approvals of the two-person rule. An admin can, and the journal names who did.
    for kind in ["operator", "admin"] {
        let r = h
            .post("/v1/tokens", &h.op, json!({"name": "alice", "kind": kind}))
            .await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
        assert!(r.text.contains("only an admin"), "{}", r.text);
    }
    let root = h
        .state
        .gate
        .issue_token("root", PrincipalKind2::Admin)
        .await
        .unwrap();
    let r = h
        .post(
            "/v1/tokens",
            &root,
            json!({"name": "alice", "kind": "operator"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let alice = r.json["token"].as_str().unwrap().to_string();
    assert_eq!(h.get("/v1/approvals", &alice).await.status, StatusCode::OK);
    let issued = h
        .events()
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::Agent && e.agent.as_deref() == Some("alice"))
        .unwrap();
    assert_eq!(issued.payload["by"], "root", "{:?}", issued.payload);
    // Nor can an operator revoke one.
    assert_error(
        &h.post("/v1/tokens/alice/revoke", &h.op, json!({})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // Bad bodies and names, and a kind that contradicts the registration.
    assert_error(
        &h.post("/v1/tokens", &h.op, json!({"name": "x", "kind": "root"}))
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &h.post("/v1/tokens", &h.op, json!({"name": "x"})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &h.post(
            "/v1/tokens",
            &h.op,
            json!({"name": "no spaces", "kind": "agent"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let r = h
        .post(
            "/v1/tokens",
            &root,
            json!({"name": "bot2", "kind": "operator"}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already registered as an agent"),
        "{}",
        r.text
    );

    // Revoked: the token no longer authenticates, anywhere.
    let r = h.post("/v1/tokens/bot2/revoke", &h.op, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json, json!({"name": "bot2", "revoked": true}));
    let r = h.submit(&bot2, read("search")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_error(
        &h.get("/v1/killswitch", &bot2).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(
        &h.post("/v1/tokens/nobody/revoke", &h.op, json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Re-issuing gives a fresh token; the old one stays dead.
    let r = h
        .post(
            "/v1/tokens",
            &h.op,
            json!({"name": "bot2", "kind": "agent"}),
        )
        .await;
    let fresh = r.json["token"].as_str().unwrap().to_string();
    assert_ne!(fresh, bot2);
    assert_eq!(
        h.submit(&fresh, read("search")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.submit(&bot2, read("search")).await.status,
        StatusCode::UNAUTHORIZED
    );

    let kinds: Vec<String> = h
        .events()
        .await
        .iter()
        .filter(|e| e.kind == EventKind::Agent && e.agent.as_deref() == Some("bot2"))
        .map(|e| e.payload["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["token_issued", "token_revoked", "token_issued"]);
}

// ---------------------------------------------------------------------------------------
// POST /v1/actions

#[tokio::test]
async fn a_read_is_allowed_and_returns_the_service() {
    let h = harness().await;
    let r = h.submit(&h.bot, read("checkout")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let d = &r.json;
    assert!(d["id"].as_str().unwrap().starts_with("act_"), "{d}");
    assert_eq!(d["agent"], "bot");
    assert_eq!(d["verdict"], "allow");
    assert_eq!(d["status"], "done");
    assert_eq!(d["risk"], "low");
    assert_eq!(d["reasons"], json!([]));
    assert!(
        d["change_id"].is_null() && d["approval_id"].is_null(),
        "{d}"
    );
    let result = d["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["name"], "checkout");
    assert_eq!(d["plan"]["destructive"], false);
    assert!(
        d["plan"]["hash"].as_str().is_some_and(|h| h.len() == 64),
        "{d}"
    );
}

#[tokio::test]
async fn a_scale_with_headroom_is_applied_and_bakes() {
    let h = harness().await;
    let r = h.submit(&h.bot, scale("search", 12)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let d = &r.json;
    assert_eq!(d["verdict"], "allow", "{d}");
    assert_eq!(d["status"], "baking");
    assert_eq!(d["risk"], "medium");
    assert!(d["change_id"].as_str().unwrap().starts_with("chg_"), "{d}");
    assert_eq!(d["plan"]["blast"]["capacity_delta_pct"], 20.0);
    assert_eq!(d["plan"]["diffs"][0]["addr"], "sim:service/search");
    assert_eq!(h.replicas("search"), 12);

    let cid = d["change_id"].as_str().unwrap();
    let c = h.get(&format!("/v1/changes/{cid}"), &h.op).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    assert_eq!(c.json["id"], cid);
    assert_eq!(c.json["action_id"], d["id"]);
    assert_eq!(c.json["agent"], "bot");
    assert_eq!(c.json["status"], "baking");
    // The owning agent may look at its change too.
    assert_eq!(
        h.get(&format!("/v1/changes/{cid}"), &h.bot).await.status,
        StatusCode::OK
    );
    assert_error(
        &h.get("/v1/changes/chg_nope", &h.op).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn deleting_a_service_others_depend_on_is_denied() {
    let h = harness().await;
    let r = h.submit(&h.bot, delete("sim:service/feature-flags")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let d = &r.json;
    assert_eq!(d["verdict"], "deny", "{d}");
    assert_eq!(d["status"], "denied");
    assert_eq!(d["risk"], "critical");
    let reasons = strs(&d["reasons"]);
    assert!(reasons.contains(&"no-delete-with-live-dependents"), "{d}");
    assert!(
        !reasons.contains(&"prod-destructive-needs-approval"),
        "a hard deny leaves out the moot holds: {d}"
    );
    assert_eq!(d["plan"]["blast"]["dependents"], 2);
    assert!(
        d["change_id"].is_null() && d["approval_id"].is_null(),
        "{d}"
    );
    assert!(
        h.sim
            .lock()
            .unwrap()
            .desired("feature-flags")
            .unwrap()
            .exists
    );
}

#[tokio::test]
async fn deleting_a_leaf_that_serves_traffic_is_denied_by_the_headroom_floor() {
    let h = harness().await;
    let r = h.submit(&h.bot, delete("sim:service/reports")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["verdict"], "deny", "{}", r.text);
    assert_eq!(r.json["reasons"], json!(["headroom-floor"]));
    assert_eq!(r.json["risk"], "high");
    assert_eq!(r.json["plan"]["headroom"], 0.0);
}

#[tokio::test]
async fn a_refused_scale_carries_a_counter_offer_that_is_allowed_when_sent() {
    let h = harness().await;
    // `search` sits at the size its zones need: no smaller cut passes, and a cut is never
    // offered an increase.
    let r = h.submit(&h.bot, scale("search", 2)).await;
    assert_ne!(r.json["verdict"], "allow", "{}", r.text);
    assert!(r.json["counter_offer"].is_null(), "{}", r.text);
    let r = h.submit(&h.bot, scale("reports", 1)).await;
    let d = &r.json;
    assert_ne!(d["verdict"], "allow", "{d}");
    assert!(
        strs(&d["details"])
            .iter()
            .any(|x| x.contains("Would pass: ")),
        "{d}"
    );
    let offer = d["counter_offer"]["params"].clone();
    let n = offer["replicas"].as_u64().unwrap_or_else(|| panic!("{d}"));
    assert!(
        d["counter_offer"]["summary"]
            .as_str()
            .unwrap()
            .contains("would be allowed"),
        "{d}"
    );
    let before = h.replicas("reports");
    assert!(n > 1 && u64::from(before) > n, "{d}");
    let r = h
        .submit(
            &h.bot,
            json!({"provider": "sim", "verb": "scale", "target": "sim:service/reports",
                   "params": offer, "intent": "the counter-offer"}),
        )
        .await;
    assert_eq!(r.json["verdict"], "allow", "{}", r.text);
    assert_eq!(u64::from(h.replicas("reports")), n);
}

#[tokio::test]
async fn deleting_an_idle_prod_leaf_is_held_with_202() {
    let h = harness().await;
    let r = h.submit(&h.bot, delete("sim:service/scratch")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let d = &r.json;
    assert_eq!(d["verdict"], "hold");
    assert_eq!(d["status"], "held");
    assert_eq!(d["reasons"], json!(["prod-destructive-needs-approval"]));
    assert!(
        d["approval_id"].as_str().unwrap().starts_with("apr_"),
        "{d}"
    );
    assert!(d["change_id"].is_null());
    assert!(
        strs(&d["details"])[0].contains("`sim:service/scratch` is in environment `prod`"),
        "{d}"
    );
    assert!(strs(&d["details"])[0].contains("Would pass: "), "{d}");
    assert!(h.sim.lock().unwrap().desired("scratch").unwrap().exists);
}

#[tokio::test]
async fn bad_submissions_are_clear_4xx_errors_and_change_nothing() {
    let h = harness().await;
    let post_raw =
        |body: &'static str| h.raw(Method::POST, "/v1/actions", Some(&h.bot), Body::from(body));

    let r = post_raw("{\"provider\": \"sim\", ").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid request body"),
        "{}",
        r.text
    );
    assert_error(&post_raw("").await, StatusCode::BAD_REQUEST, "bad_request");

    // The agent comes from the token, never from the body.
    let mut smuggled = read("checkout");
    smuggled["agent"] = json!("x");
    let r = h.submit(&h.bot, smuggled).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `agent`"),
        "{}",
        r.text
    );

    let r = h
        .submit(
            &h.bot,
            json!({"provider": "sim", "verb": "nuke", "target": "sim:service/checkout"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nuke"),
        "{}",
        r.text
    );

    let r = h
        .submit(
            &h.bot,
            json!({"provider": "aws", "verb": "read", "target": "aws:instance/i-1"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown provider `aws`"),
        "{}",
        r.text
    );

    let r = h
        .submit(
            &h.bot,
            scale("search", 12)
                .as_object()
                .cloned()
                .map(|mut o| {
                    o.insert("params".into(), json!({"replicas": "many"}));
                    Value::Object(o)
                })
                .unwrap(),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`replicas`"),
        "{}",
        r.text
    );

    let r = h.submit(&h.bot, scale("nope", 3)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sim:service/nope"),
        "{}",
        r.text
    );

    let r = h
        .raw(
            Method::POST,
            "/v1/actions?wait=maybe",
            Some(&h.bot),
            Body::from(read("checkout").to_string()),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");

    assert_eq!(h.replicas("search"), 10);
    assert!(
        h.events()
            .await
            .iter()
            .all(|e| e.kind != EventKind::Verdict),
        "no bad submission got a verdict"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let h = harness_with(|c| c.body_limit_bytes = 1024).await;
    let mut big = read("checkout");
    big["intent"] = json!("x".repeat(4096));
    let r = h.submit(&h.bot, big).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // A body under the limit still goes through.
    assert_eq!(
        h.submit(&h.bot, read("checkout")).await.status,
        StatusCode::OK
    );
    // Operator endpoints with a body share the limit.
    let r = h
        .post(
            "/v1/approvals/apr_x",
            &h.op,
            json!({"decision": "deny", "reason": "y".repeat(4096)}),
        )
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn wait_returns_at_once_for_a_read_and_a_deny() {
    let h = harness().await;
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        h.raw(
            Method::POST,
            "/v1/actions?wait=true&timeout_s=30",
            Some(&h.bot),
            Body::from(read("checkout").to_string()),
        ),
    )
    .await
    .expect("a read has nothing to wait for");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["verdict"], "allow");
    assert_eq!(r.json["status"], "done");
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        h.raw(
            Method::POST,
            "/v1/actions?wait=true",
            Some(&h.bot),
            Body::from(delete("sim:service/feature-flags").to_string()),
        ),
    )
    .await
    .expect("a deny has nothing to wait for");
    assert_eq!(r.json["verdict"], "deny");
}

#[tokio::test]
async fn wait_follows_a_hold_until_an_operator_denies_it() {
    let h = harness().await;
    let router = h.router.clone();
    let bot = h.bot.clone();
    let waiting = tokio::spawn(async move {
        let req = request(
            Method::POST,
            "/v1/actions?wait=true&timeout_s=20",
            Some(&bot),
            Body::from(delete("sim:service/scratch").to_string()),
        );
        send(&router, req).await
    });
    let apr = loop {
        let items = h.get("/v1/approvals", &h.op).await.json["items"].clone();
        if let Some(id) = items[0]["id"].as_str() {
            break id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let r = h
        .post(
            &format!("/v1/approvals/{apr}"),
            &h.op,
            json!({"decision": "deny", "reason": "not today"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["waited"], "done", "{}", r.text);
    assert_eq!(r.json["status"], "denied");
    assert_eq!(r.json["approval_id"], apr.as_str());
}

#[tokio::test]
async fn wait_gives_up_at_its_timeout_and_says_so() {
    let h = harness().await;
    let body = Body::from(delete("sim:service/scratch").to_string());
    let r = h
        .raw(
            Method::POST,
            "/v1/actions?wait=true&timeout_s=1",
            Some(&h.bot),
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["waited"], "timeout", "{}", r.text);
    assert_eq!(r.json["status"], "held");
    assert_eq!(r.json["verdict"], "hold");
    assert!(r.json["approval_id"].as_str().is_some(), "{}", r.text);
}

// ---------------------------------------------------------------------------------------
// GET /v1/actions, /v1/actions/{id}

#[tokio::test]
async fn an_action_shows_its_status_to_its_agent_and_operators_only() {
    let h = harness().await;
    let other = h
        .state
        .gate
        .issue_token("other", PrincipalKind2::Agent)
        .await
        .unwrap();
    let d = h.submit(&h.bot, scale("search", 11)).await.json;
    let id = d["id"].as_str().unwrap();
    for token in [&h.bot, &h.op] {
        let r = h.get(&format!("/v1/actions/{id}"), token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let v = &r.json;
        assert_eq!(v["id"], id);
        assert_eq!(v["agent"], "bot");
        assert_eq!(v["verdict"], "allow");
        assert_eq!(v["status"], "baking");
        assert_eq!(v["change_id"], d["change_id"]);
        assert_eq!(v["risk"], "medium");
        assert_eq!(v["request"]["verb"], "scale");
        assert_eq!(v["plan"]["hash"], d["plan"]["hash"]);
        assert_eq!(v["events"], 4, "request, verdict, applying, applied: {v}");
    }
    assert_error(
        &h.get(&format!("/v1/actions/{id}"), &other).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &h.get(
            &format!("/v1/changes/{}", d["change_id"].as_str().unwrap()),
            &other,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &h.get("/v1/actions/act_nope", &h.op).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &h.get("/v1/actions/act_nope", &h.bot).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn actions_are_listed_newest_first_in_pages() {
    let h = harness().await;
    let other = h
        .state
        .gate
        .issue_token("other", PrincipalKind2::Agent)
        .await
        .unwrap();
    let mut mine = Vec::new();
    for s in ["checkout", "search", "payments", "reports", "feature-flags"] {
        mine.push(
            h.submit(&h.bot, read(s)).await.json["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        h.submit(&other, read(s)).await;
    }
    mine.reverse();

    let mut seen = Vec::new();
    let mut uri = "/v1/actions?agent=bot&limit=2".to_string();
    let mut pages = 0;
    loop {
        let r = h.get(&uri, &h.op).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        pages += 1;
        let items = r.json["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for i in items {
            assert_eq!(i["agent"], "bot");
            // The journal's view of a finished read is `allowed` (documented in openapi.json).
            assert_eq!(i["status"], "allowed");
            seen.push(i["id"].as_str().unwrap().to_string());
        }
        match r.json["next"].as_i64() {
            Some(next) => uri = format!("/v1/actions?agent=bot&limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, mine);
    assert_eq!(pages, 3);

    // An agent sees its own actions without asking, and only those.
    let r = h.get("/v1/actions?limit=100", &h.bot).await;
    let ids: Vec<&str> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, mine);
    assert!(r.json["next"].is_null());
    assert_eq!(
        h.get("/v1/actions?agent=bot", &h.bot).await.status,
        StatusCode::OK
    );
    let r = h.get("/v1/actions?agent=other", &h.bot).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // Operators see everyone; filters apply.
    assert_eq!(
        h.get("/v1/actions?limit=100", &h.op).await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    assert_eq!(
        h.get("/v1/actions?status=allowed", &h.op).await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    assert_eq!(
        h.get("/v1/actions?status=baking", &h.op).await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let since_0 = h.get("/v1/actions?since=0", &h.op).await.json;
    assert_eq!(since_0["items"].as_array().unwrap().len(), 10);
    let later = format!("/v1/actions?since={}", h.state.gate.now() + 60_000);
    assert_eq!(h.get(&later, &h.op).await.json["items"], json!([]));
    assert_error(
        &h.get("/v1/actions?limit=lots", &h.op).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &h.get("/v1/actions?color=red", &h.op).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
}

// ---------------------------------------------------------------------------------------
// Approvals

#[tokio::test]
async fn an_operator_approves_a_hold_and_it_is_applied() {
    let h = harness().await;
    let held = h.submit(&h.bot, delete("sim:service/scratch")).await.json;
    let apr = held["approval_id"].as_str().unwrap();

    let r = h.get("/v1/approvals", &h.op).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let a = &items[0];
    assert_eq!(a["id"], apr);
    assert_eq!(a["action_id"], held["id"]);
    assert_eq!(a["agent"], "bot");
    assert_eq!(a["risk"], "high");
    assert_eq!(a["reasons"], json!(["prod-destructive-needs-approval"]));
    assert_eq!(a["request"]["target"], "sim:service/scratch");
    assert_eq!(a["plan"]["hash"], held["plan"]["hash"]);
    assert_eq!(a["plan"]["destructive"], true);
    assert_eq!(a["approvals_needed"], 1);
    assert_eq!(a["approved_by"], json!([]));

    let r = h
        .post(
            &format!("/v1/approvals/{apr}"),
            &h.op,
            json!({"decision": "maybe"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maybe"),
        "{}",
        r.text
    );
    assert_error(
        &h.post(&format!("/v1/approvals/{apr}"), &h.op, json!({}))
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &h.post(
            "/v1/approvals/apr_nope",
            &h.op,
            json!({"decision": "approve"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        h.get("/v1/approvals", &h.op).await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "bad resolutions leave the hold"
    );

    let r = h
        .post(
            &format!("/v1/approvals/{apr}"),
            &h.op,
            json!({"decision": "approve", "reason": "ok"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["verdict"], "allow", "{}", r.text);
    assert_eq!(r.json["status"], "baking");
    assert_eq!(
        r.json["id"], held["id"],
        "the approval applies the held action itself"
    );
    assert!(r.json["change_id"].as_str().is_some());
    assert!(!h.sim.lock().unwrap().desired("scratch").unwrap().exists);

    assert_eq!(
        h.get("/v1/approvals", &h.op).await.json,
        json!({"items": []})
    );
    let v = h
        .get(
            &format!("/v1/actions/{}", held["id"].as_str().unwrap()),
            &h.bot,
        )
        .await
        .json;
    assert_eq!(v["status"], "baking");
    assert_eq!(v["change_id"], r.json["change_id"]);
    // A resolved hold is gone, and answering it again says how it was answered.
    let again = h
        .post(
            &format!("/v1/approvals/{apr}"),
            &h.op,
            json!({"decision": "approve"}),
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");
    assert!(
        again.text.contains("already answered: approve by op"),
        "{}",
        again.text
    );
    let approval = h
        .events()
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::Approval)
        .unwrap();
    assert_eq!(approval.payload["by"], "op");
    assert_eq!(approval.payload["reason"], "ok");
    assert_eq!(approval.payload["outcome"], "approved");
}

#[tokio::test]
async fn an_operator_denies_a_hold() {
    let h = harness().await;
    let held = h.submit(&h.bot, delete("sim:service/scratch")).await.json;
    let apr = held["approval_id"].as_str().unwrap();
    let r = h
        .post(
            &format!("/v1/approvals/{apr}"),
            &h.op,
            json!({"decision": "deny", "reason": "keep it"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["verdict"], "deny");
    assert_eq!(r.json["status"], "denied");
    assert_eq!(r.json["reasons"], json!(["operator-denied"]));
    assert!(
        strs(&r.json["details"])[0].contains("keep it"),
        "{}",
        r.text
    );
    assert!(h.sim.lock().unwrap().desired("scratch").unwrap().exists);
    let v = h
        .get(
            &format!("/v1/actions/{}", held["id"].as_str().unwrap()),
            &h.op,
        )
        .await
        .json;
    assert_eq!(v["status"], "denied");
    assert_eq!(
        h.get("/v1/approvals", &h.op).await.json,
        json!({"items": []})
    );
}

#[tokio::test]
async fn two_person_rule_a_critical_hold_needs_two_distinct_operators() {
    let h = harness_with(|c| c.two_person_critical = true).await;
    // Deleting the whole prod environment (the December 2025 outage) is critical risk.
    let held = h.submit(&h.bot, delete("sim:environment/prod")).await;
    assert_eq!(held.status, StatusCode::ACCEPTED, "{}", held.text);
    assert_eq!(held.json["risk"], "critical");
    // The environment's own reason first, then each service it contains, named.
    let reasons = strs(&held.json["reasons"]);
    assert_eq!(reasons[0], "prod-destructive-needs-approval");
    assert!(reasons.len() > 1, "{reasons:?}");
    assert!(
        reasons[1..]
            .iter()
            .all(|r| r.starts_with("prod-destructive-needs-approval on sim:service/")),
        "{reasons:?}"
    );
    let apr = held.json["approval_id"].as_str().unwrap().to_string();
    // A high-risk hold still needs one operator.
    let leaf = h.submit(&h.bot, delete("sim:service/scratch")).await.json;
    let approvals = h.get("/v1/approvals", &h.op).await.json;
    let needed: BTreeMap<&str, i64> = approvals["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap(),
                a["approvals_needed"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(needed[apr.as_str()], 2);
    assert_eq!(needed[leaf["approval_id"].as_str().unwrap()], 1);

    let uri = format!("/v1/approvals/{apr}");
    let first = h
        .post(
            &uri,
            &h.op,
            json!({"decision": "approve", "reason": "planned rebuild"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json["verdict"], "hold", "{}", first.text);
    assert_eq!(first.json["status"], "held");
    assert!(first.json["change_id"].is_null());
    assert!(
        strs(&first.json["details"])[0].contains("2 distinct operators"),
        "{}",
        first.text
    );
    // The same operator again does not count twice.
    let again = h
        .post(
            &uri,
            &h.op,
            json!({"decision": "approve", "reason": "really"}),
        )
        .await;
    assert_eq!(again.json["verdict"], "hold", "{}", again.text);
    let a = h.get("/v1/approvals", &h.op).await.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == apr.as_str())
        .cloned()
        .unwrap();
    assert_eq!(a["approved_by"], json!(["op"]));
    // An approval from an operator revoked since no longer counts: revoke op, and op2's
    // approval is again only one of two.
    let root = h
        .state
        .gate
        .issue_token("root", PrincipalKind2::Admin)
        .await
        .unwrap();
    let r = h.post("/v1/tokens/op/revoke", &root, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after_revoke = h
        .post(
            &uri,
            &h.op2,
            json!({"decision": "approve", "reason": "agreed"}),
        )
        .await;
    assert_eq!(
        after_revoke.json["verdict"], "hold",
        "{}",
        after_revoke.text
    );
    let restored = h
        .post(
            "/v1/tokens",
            &root,
            json!({"name": "op", "kind": "operator"}),
        )
        .await;
    let op = restored.json["token"].as_str().unwrap().to_string();
    let outcomes: Vec<String> = h
        .events()
        .await
        .iter()
        .filter(|e| e.kind == EventKind::Approval)
        .map(|e| e.payload["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        outcomes,
        [
            "recorded: 1 of 2 approvals",
            "recorded: 1 of 2 approvals",
            "recorded: 1 of 2 approvals"
        ]
    );
    assert!(
        h.sim.lock().unwrap().desired("checkout").unwrap().exists,
        "nothing applied on one approval"
    );

    // Re-keyed, op approves again: now two distinct operators in good standing.
    let second = h
        .post(
            &uri,
            &op,
            json!({"decision": "approve", "reason": "agreed"}),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(second.json["verdict"], "allow", "{}", second.text);
    assert_eq!(second.json["status"], "baking");
    assert!(second.json["change_id"].as_str().is_some());
    let sim = h.sim.lock().unwrap();
    for s in [
        "checkout",
        "search",
        "payments",
        "feature-flags",
        "reports",
        "scratch",
    ] {
        assert!(!sim.desired(s).unwrap().exists, "{s}");
    }
}

// ---------------------------------------------------------------------------------------
// Kill switch, freeze, revert, undo

#[tokio::test]
async fn the_killswitch_denies_mutations_but_not_reads() {
    let h = harness().await;
    assert_eq!(
        h.get("/v1/killswitch", &h.bot).await.json,
        json!({"killswitch": "off"})
    );
    let r = h
        .post("/v1/killswitch", &h.op, json!({"state": "on"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json, json!({"killswitch": "on"}));
    assert_eq!(
        h.get("/v1/killswitch", &h.bot).await.json,
        json!({"killswitch": "on"})
    );

    let r = h.submit(&h.bot, scale("search", 12)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["verdict"], "deny");
    assert_eq!(r.json["reasons"], json!(["killswitch"]));
    assert_eq!(h.replicas("search"), 10);
    let r = h.submit(&h.bot, read("search")).await;
    assert_eq!(r.json["verdict"], "allow");

    assert_error(
        &h.post("/v1/killswitch", &h.op, json!({"state": "maybe"}))
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &h.post("/v1/killswitch", &h.op, json!({"on": true})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_eq!(
        h.get("/v1/killswitch", &h.op).await.json,
        json!({"killswitch": "on"})
    );

    let r = h
        .post("/v1/killswitch", &h.op, json!({"state": "off"}))
        .await;
    assert_eq!(r.json, json!({"killswitch": "off"}));
    let r = h.submit(&h.bot, scale("search", 12)).await;
    assert_eq!(r.json["verdict"], "allow", "{}", r.text);
    assert_eq!(h.replicas("search"), 12);
    let flips: Vec<(bool, String)> = h
        .events()
        .await
        .iter()
        .filter(|e| e.kind == EventKind::Killswitch)
        .map(|e| {
            (
                e.payload["on"].as_bool().unwrap(),
                e.payload["by"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(flips, [(true, "op".to_string()), (false, "op".to_string())]);
}

#[tokio::test]
async fn a_frozen_agent_is_held_until_unfrozen() {
    let h = harness().await;
    let r = h.post("/v1/agents/bot/freeze", &h.op, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json, json!({"agent": "bot", "frozen": true}));

    let r = h.submit(&h.bot, scale("search", 12)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json["verdict"], "hold");
    assert_eq!(r.json["reasons"], json!(["breaker-open"]));
    assert!(
        strs(&r.json["details"])[0].contains("frozen by op"),
        "{}",
        r.text
    );
    assert_eq!(h.replicas("search"), 10);
    assert_eq!(
        h.submit(&h.bot, read("search")).await.json["verdict"],
        "allow",
        "reads still go through"
    );

    let r = h.post("/v1/agents/bot/unfreeze", &h.op, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json, json!({"agent": "bot", "frozen": false}));
    let r = h.submit(&h.bot, scale("search", 12)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["verdict"], "allow");
    assert_eq!(h.replicas("search"), 12);

    let breaker: Vec<String> = h
        .events()
        .await
        .iter()
        .filter(|e| e.kind == EventKind::Breaker && e.agent.as_deref() == Some("bot"))
        .map(|e| e.payload["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(breaker, ["open", "reset"]);
}

#[tokio::test]
async fn a_held_mutation_of_a_frozen_agent_is_applied_when_approved() {
    let h = harness().await;
    h.post("/v1/agents/bot/freeze", &h.op, json!({})).await;
    let held = h.submit(&h.bot, scale("search", 12)).await.json;
    let r = h
        .post(
            &format!("/v1/approvals/{}", held["approval_id"].as_str().unwrap()),
            &h.op,
            json!({"decision": "approve", "reason": "fine"}),
        )
        .await;
    assert_eq!(r.json["verdict"], "allow", "{}", r.text);
    assert_eq!(h.replicas("search"), 12);
}

#[tokio::test]
async fn an_operator_reverts_a_change_once() {
    let h = harness().await;
    let d = h.submit(&h.bot, scale("search", 12)).await.json;
    let cid = d["change_id"].as_str().unwrap();
    let uri = format!("/v1/changes/{cid}/revert");

    let r = h.post(&uri, &h.op, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["outcome"], "reverted");
    assert_eq!(r.json["change_id"], cid);
    assert_eq!(r.json["agent"], "bot");
    assert_eq!(r.json["rule"], "reverted by op");
    assert_eq!(h.replicas("search"), 10);

    // A reverted change cannot be reverted again.
    let r = h.post(&uri, &h.op, json!({})).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is reverted"),
        "{}",
        r.text
    );
    assert_eq!(h.replicas("search"), 10);

    let c = h.get(&format!("/v1/changes/{cid}"), &h.op).await.json;
    assert_eq!(c["status"], "reverted");
    let v = h
        .get(
            &format!("/v1/actions/{}", d["id"].as_str().unwrap()),
            &h.bot,
        )
        .await
        .json;
    assert_eq!(v["status"], "reverted");
    assert_error(
        &h.post("/v1/changes/chg_nope/revert", &h.op, json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let r = h.raw(Method::GET, "/metrics", None, Body::empty()).await;
    assert!(r.text.contains("airlock_reverts_total 1"), "{}", r.text);
    assert!(
        r.text
            .contains(r#"airlock_changes_total{status="baking"} 1"#),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains(r#"airlock_changes_total{status="reverted"} 1"#),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_revert_after_someone_else_changed_the_resource_is_409_needs_attention() {
    let h = harness_with(|c| c.guards.max_capacity_add_pct = 1000.0).await;
    let other = h
        .state
        .gate
        .issue_token("other", PrincipalKind2::Agent)
        .await
        .unwrap();
    let mine = h.submit(&h.bot, scale("search", 12)).await.json;
    let theirs = h.submit(&other, scale("search", 13)).await.json;
    assert_eq!(theirs["verdict"], "allow", "{theirs}");
    let cid = mine["change_id"].as_str().unwrap();
    let r = h
        .post(&format!("/v1/changes/{cid}/revert"), &h.op, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json["outcome"], "needs_attention");
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap()
            .contains("changed after this change was applied"),
        "{}",
        r.text
    );
    assert_eq!(
        h.replicas("search"),
        13,
        "someone else's work is not clobbered"
    );
    assert_eq!(
        h.get(&format!("/v1/changes/{cid}"), &h.op).await.json["status"],
        "needs_attention"
    );
    assert_eq!(
        h.get(
            &format!("/v1/actions/{}", mine["id"].as_str().unwrap()),
            &h.op
        )
        .await
        .json["status"],
        "needs_attention"
    );
}

#[tokio::test]
async fn undo_reverts_everything_an_agent_did_since() {
    let h = harness().await;
    let other = h
        .state
        .gate
        .issue_token("other", PrincipalKind2::Agent)
        .await
        .unwrap();
    let a = h.submit(&h.bot, scale("search", 12)).await.json;
    let b = h.submit(&h.bot, scale("checkout", 9)).await.json;
    let c = h.submit(&other, scale("payments", 9)).await.json;
    assert_eq!(
        (
            h.replicas("search"),
            h.replicas("checkout"),
            h.replicas("payments")
        ),
        (12, 9, 9)
    );

    for since in [json!(true), json!("soon"), json!(1.5), json!(null)] {
        let r = h
            .post("/v1/undo", &h.op, json!({"agent": "bot", "since": since}))
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_error(
        &h.post("/v1/undo", &h.op, json!({"agent": "bot"})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_eq!(h.replicas("search"), 12, "a bad undo changes nothing");

    let r = h
        .post("/v1/undo", &h.op, json!({"agent": "bot", "since": "1h"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["reverted"], 2);
    assert_eq!(r.json["stopped_on_conflict"], false);
    let undone: Vec<&str> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["change_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        undone,
        [
            b["change_id"].as_str().unwrap(),
            a["change_id"].as_str().unwrap()
        ],
        "newest first"
    );
    assert_eq!(
        (
            h.replicas("search"),
            h.replicas("checkout"),
            h.replicas("payments")
        ),
        (10, 8, 9),
        "another agent's change stays"
    );
    for d in [&a, &b] {
        assert_eq!(
            h.get(
                &format!("/v1/changes/{}", d["change_id"].as_str().unwrap()),
                &h.op
            )
            .await
            .json["status"],
            "reverted"
        );
    }
    assert_eq!(
        h.get(
            &format!("/v1/changes/{}", c["change_id"].as_str().unwrap()),
            &h.op
        )
        .await
        .json["status"],
        "baking"
    );

    // Nothing left to undo; a timestamp works as `since` too.
    let r = h
        .post("/v1/undo", &h.op, json!({"agent": "bot", "since": 0}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"reverted": 0, "stopped_on_conflict": false, "items": []})
    );
}

// ---------------------------------------------------------------------------------------
// Journal and events

#[tokio::test]
async fn the_journal_pages_and_filters() {
    let h = harness().await;
    for s in ["checkout", "search", "payments"] {
        h.submit(&h.bot, read(s)).await;
    }
    h.submit(&h.bot, scale("search", 11)).await;
    let all = h.events().await;
    assert_eq!(
        all.len(),
        3 + 3 * 2 + 4,
        "three tokens, three reads, one applied scale (with its intent)"
    );

    let mut seqs = Vec::new();
    let mut uri = "/v1/journal?limit=4".to_string();
    loop {
        let r = h.get(&uri, &h.op).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let items = r.json["items"].as_array().unwrap();
        assert!(items.len() <= 4);
        seqs.extend(items.iter().map(|e| e["seq"].as_i64().unwrap()));
        match r.json["next"].as_i64() {
            Some(next) => {
                assert_eq!(Some(next), items.last().and_then(|e| e["seq"].as_i64()));
                uri = format!("/v1/journal?limit=4&after={next}");
            }
            None => break,
        }
    }
    assert_eq!(seqs, all.iter().map(|e| e.seq).collect::<Vec<_>>());

    let first = h.get("/v1/journal?limit=1", &h.op).await.json;
    let e = &first["items"][0];
    assert_eq!(e["seq"], all[0].seq);
    assert_eq!(e["kind"], "agent");
    assert!(e["hash"].as_str().is_some(), "{e}");

    let r = h.get("/v1/journal?kind=verdict", &h.op).await;
    let kinds: Vec<&str> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["verdict"; 4]);
    let r = h.get("/v1/journal?agent=op", &h.op).await;
    assert_eq!(r.json["items"].as_array().unwrap().len(), 1);

    let r = h.get("/v1/journal?kind=nonsense", &h.op).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`nonsense`"),
        "{}",
        r.text
    );
    assert_error(
        &h.get("/v1/journal?limit=-1", &h.op).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &h.get("/v1/journal?since=3", &h.op).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
}

/// Reads the SSE body until `done` says enough, or fails after a few seconds.
async fn read_sse(body: &mut Body, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done(&text) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no more events within 5 s; got:\n{text}"))
            .expect("the stream ended")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    text
}

fn sse_ids(text: &str) -> Vec<i64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn events_resume_after_last_event_id_then_follow_live() {
    let h = harness().await;
    h.submit(&h.bot, read("checkout")).await;
    let total = h.events().await.len() as i64;
    assert_eq!(total, 5);

    let mut req = request(Method::GET, "/v1/events", Some(&h.op), Body::empty());
    req.headers_mut()
        .insert("last-event-id", "2".parse().unwrap());
    let resp = h.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = resp.into_body();
    let text = read_sse(&mut body, |t| sse_ids(t).len() >= 3 && t.ends_with("\n\n")).await;
    assert_eq!(sse_ids(&text), [3, 4, 5], "{text}");
    assert!(text.contains("event: request\n"), "{text}");
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(data[0]["seq"], 3);
    assert_eq!(data[1]["kind"], "request");
    assert_eq!(data[2]["kind"], "verdict");

    // Then new events arrive live, in order, without repeats.
    h.submit(&h.bot, read("search")).await;
    let text = read_sse(&mut body, |t| sse_ids(t).len() >= 2).await;
    assert_eq!(sse_ids(&text), [6, 7], "{text}");

    // Without Last-Event-ID the stream starts with what happens next.
    let resp = h
        .router
        .clone()
        .oneshot(request(
            Method::GET,
            "/v1/events",
            Some(&h.op),
            Body::empty(),
        ))
        .await
        .unwrap();
    let mut body = resp.into_body();
    h.post("/v1/killswitch", &h.op, json!({"state": "on"}))
        .await;
    let text = read_sse(&mut body, |t| !sse_ids(t).is_empty() && t.ends_with("\n\n")).await;
    assert_eq!(sse_ids(&text), [8], "{text}");
    assert!(text.contains("event: killswitch\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_lose_nothing_when_writers_race() {
    // Registering principals does not go through the gate's lock, so these appends race
    // each other from the journal to the fan-out: every one must still reach the stream.
    const N: i64 = 100;
    let h = harness().await;
    let resp = h
        .router
        .clone()
        .oneshot(request(
            Method::GET,
            "/v1/events",
            Some(&h.op),
            Body::empty(),
        ))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut tasks = Vec::new();
    for i in 0..N {
        let router = h.router.clone();
        let op = h.op.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"name": format!("agent-{i}"), "kind": "agent"}).to_string();
            send(
                &router,
                request(Method::POST, "/v1/tokens", Some(&op), Body::from(body)),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let text = read_sse(&mut body, |t| {
        sse_ids(t).len() as i64 >= N && t.ends_with("\n\n")
    })
    .await;
    let mut ids = sse_ids(&text);
    ids.sort_unstable();
    assert_eq!(ids, (4..4 + N).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------
// Bake through the API

#[tokio::test]
async fn a_bad_deploy_is_reverted_by_its_bake_and_a_good_change_settles() {
    let h = harness_with(|c| {
        c.bake.window_s = 1;
        c.bake.judge_window_s = 2;
        c.bake.min_requests = 10.0;
    })
    .await;
    let bad = h
        .submit(&h.bot, json!({"provider": "sim", "verb": "deploy", "target": "sim:service/reports", "params": {"version": "bad"}}))
        .await;
    assert_eq!(bad.status, StatusCode::OK, "{}", bad.text);
    assert_eq!(bad.json["verdict"], "allow", "{}", bad.text);
    assert_eq!(bad.json["status"], "baking");
    let bad_cid = bad.json["change_id"].as_str().unwrap().to_string();
    let good = h.submit(&h.bot, scale("search", 11)).await.json;
    let good_cid = good["change_id"].as_str().unwrap().to_string();
    assert_eq!(
        h.sim.lock().unwrap().desired("reports").unwrap().version,
        "bad"
    );

    h.tick(10);
    let mut outcomes = h.state.gate.poll().await.unwrap();
    let reverted = outcomes
        .iter()
        .find_map(|o| match o {
            BakeOutcome::Reverted {
                change_id,
                service,
                rule,
                value,
                ..
            } if *change_id == bad_cid => Some((service.clone(), rule.clone(), *value)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the bad deploy was not reverted: {outcomes:?}"));
    assert_eq!(reverted.0, "reports");
    assert!(reverted.1.starts_with("availability"), "{reverted:?}");
    assert!(reverted.2.is_some_and(|v| v < 0.9), "{reverted:?}");
    assert_eq!(
        h.sim.lock().unwrap().desired("reports").unwrap().version,
        "v1"
    );

    let v = h
        .get(
            &format!("/v1/actions/{}", bad.json["id"].as_str().unwrap()),
            &h.bot,
        )
        .await
        .json;
    assert_eq!(v["status"], "reverted", "{v}");
    assert_eq!(v["change_id"], bad_cid.as_str());
    assert_eq!(
        h.get(&format!("/v1/changes/{bad_cid}"), &h.op).await.json["status"],
        "reverted"
    );
    let kinds: Vec<String> = h.get("/v1/journal?limit=1000", &h.op).await.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["change_id"] == bad_cid.as_str())
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["applying", "applied", "breach", "reverting", "reverted"]
    );

    // The healthy scale settles once its (1 s) window is over.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.tick(2);
    outcomes.extend(h.state.gate.poll().await.unwrap());
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, BakeOutcome::Settled { change_id, .. } if *change_id == good_cid)),
        "{outcomes:?}"
    );
    let v = h
        .get(
            &format!("/v1/actions/{}", good["id"].as_str().unwrap()),
            &h.bot,
        )
        .await
        .json;
    assert_eq!(v["status"], "settled", "{v}");
    assert_eq!(h.replicas("search"), 11);
    // A settled change can still be reverted by an operator.
    let r = h
        .post(&format!("/v1/changes/{good_cid}/revert"), &h.op, json!({}))
        .await;
    assert_eq!(r.json["outcome"], "reverted", "{}", r.text);
    assert_eq!(h.replicas("search"), 10);
}

#[tokio::test]
async fn wait_follows_a_change_until_its_bake_reverts_it() {
    let h = harness_with(|c| {
        c.bake.window_s = 30;
        c.bake.judge_window_s = 2;
        c.bake.min_requests = 10.0;
    })
    .await;
    let router = h.router.clone();
    let bot = h.bot.clone();
    let waiting = tokio::spawn(async move {
        let body = json!({"provider": "sim", "verb": "deploy", "target": "sim:service/reports", "params": {"version": "bad"}});
        send(
            &router,
            request(
                Method::POST,
                "/v1/actions?wait=true&timeout_s=20",
                Some(&bot),
                Body::from(body.to_string()),
            ),
        )
        .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !waiting.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the wait did not end"
        );
        h.tick(2);
        h.state.gate.poll().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = waiting.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["waited"], "done", "{}", r.text);
    assert_eq!(r.json["status"], "reverted", "{}", r.text);
    assert_eq!(r.json["verdict"], "allow");
}

// ---------------------------------------------------------------------------------------
// Concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_agents_submitting_at_once_lose_no_journal_event() {
    const AGENTS: usize = 50;
    const EACH: usize = 20;
    let h = harness_with(|c| c.guards.mutations_per_minute = 10_000).await;
    let mut tokens = Vec::new();
    for i in 0..AGENTS {
        tokens.push(
            h.state
                .gate
                .issue_token(&format!("agent-{i}"), PrincipalKind2::Agent)
                .await
                .unwrap(),
        );
    }
    let before = h.events().await.len();

    let mut tasks = Vec::new();
    for (a, token) in tokens.iter().enumerate() {
        for i in 0..EACH {
            let router = h.router.clone();
            let token = token.clone();
            // Mostly reads; every fifth a small scale of the biggest service.
            let body = if i % 5 == 4 {
                scale("search", 10 + ((a + i) % 3) as u32)
            } else {
                read("search")
            };
            tasks.push(tokio::spawn(async move {
                send(
                    &router,
                    request(
                        Method::POST,
                        "/v1/actions",
                        Some(&token),
                        Body::from(body.to_string()),
                    ),
                )
                .await
            }));
        }
    }
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    let mut allowed = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.status.is_success(), "{}", r.text);
        allowed += usize::from(r.json["verdict"] == "allow");
        // Request and verdict, plus the intent and the outcome of an applied (or failed)
        // change.
        let extra = 2 * usize::from(!r.json["change_id"].is_null() || !r.json["error"].is_null());
        assert!(
            expected
                .insert(r.json["id"].as_str().unwrap().to_string(), 2 + extra)
                .is_none(),
            "ids are unique"
        );
    }
    assert_eq!(expected.len(), AGENTS * EACH);
    assert!(allowed >= AGENTS * EACH * 4 / 5, "{allowed} allowed");

    let events = h.events().await;
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events[before..] {
        *found.entry(e.action_id.clone().unwrap()).or_default() += 1;
    }
    assert_eq!(found, expected);
    assert_eq!(events.len(), before + expected.values().sum::<usize>());
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "no gaps in the sequence"
    );
    let report = h.state.journal.verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, events.len() as u64);
}

// ---------------------------------------------------------------------------------------
// GET /v1/changes/{id}/timeline

#[tokio::test]
async fn a_change_timeline_tells_its_story_to_its_agent_and_operators_only() {
    let h = harness().await;
    let other = h
        .state
        .gate
        .issue_token("other", PrincipalKind2::Agent)
        .await
        .unwrap();
    let d = h.submit(&h.bot, scale("search", 12)).await.json;
    let cid = d["change_id"].as_str().unwrap();
    let r = h
        .post(&format!("/v1/changes/{cid}/revert"), &h.op, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let uri = format!("/v1/changes/{cid}/timeline");

    for token in [&h.op, &h.bot] {
        let r = h.get(&uri, token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let t = &r.json;
        assert_eq!(t["change_id"], cid, "{t}");
        assert_eq!(t["action_id"], d["id"], "{t}");
        assert_eq!(t["agent"], "bot", "{t}");
        assert_eq!(t["status"], "reverted", "{t}");
        let applied = t["applied_at"].as_i64().unwrap();
        let reverted = t["reverted_at"].as_i64().unwrap();
        assert_eq!(t["time_to_mitigate_ms"], reverted - applied, "{t}");
        assert!(reverted >= applied, "{t}");
        // Reverted by hand: nothing was detected, nothing settled.
        assert_eq!(t["detected_at"], Value::Null, "{t}");
        assert_eq!(t["settled_at"], Value::Null, "{t}");

        let entries = t["entries"].as_array().unwrap();
        let story: Vec<&Value> = entries
            .iter()
            .filter(|e| {
                ["request", "verdict", "applied", "reverted"].contains(&e["kind"].as_str().unwrap())
            })
            .collect();
        let kinds: Vec<&str> = story.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["request", "verdict", "applied", "reverted"], "{t}");
        let seqs: Vec<i64> = story.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{t}");
        let ts: Vec<i64> = entries.iter().map(|e| e["ts"].as_i64().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "sorted by time: {t}");
        let summary = |i: usize| story[i]["summary"].as_str().unwrap();
        assert!(
            summary(0).starts_with("request by bot: scale sim:service/search"),
            "{t}"
        );
        assert_eq!(summary(1), "verdict: allow", "{t}");
        assert!(
            summary(2).starts_with("applied: scale sim:service/search"),
            "{t}"
        );
        assert_eq!(summary(3), "reverted by op", "{t}");
        assert_eq!(story[3]["detail"]["by"], "op", "{t}");
        assert_eq!(story[0]["detail"]["request"]["verb"], "scale", "{t}");
    }

    assert_error(
        &h.get(&uri, &other).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    for token in [&h.op, &h.bot] {
        let r = h.get("/v1/changes/chg_nope/timeline", token).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        assert!(r.text.contains("unknown change `chg_nope`"), "{}", r.text);
    }
    let r = h.raw(Method::GET, &uri, None, Body::empty()).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn an_agent_flapping_a_service_is_quarantined_shown_and_reset_by_an_operator() {
    let h = harness().await;
    let mut quarantined_at = None;
    // Flapping above the size the built-in `search` needs to survive a zone's loss (below
    // it, `survive-zone-loss` denies the scale-downs before the anomaly could show).
    for n in 1..=20u32 {
        let replicas = if n % 2 == 0 { 14 } else { 16 };
        let r = h.submit(&h.bot, scale("search", replicas)).await;
        let held_by_breaker = r.json["reasons"] == json!(["breaker-open"]);
        if held_by_breaker {
            assert!(
                strs(&r.json["details"])[0].contains("quarantined: anomaly score"),
                "{}",
                r.text
            );
            quarantined_at = Some(n);
            break;
        }
        h.tick(3);
    }
    let n = quarantined_at.expect("the flapping agent was never quarantined");
    assert!(n <= 20, "{n}");

    // The journal says why, with the values that tripped it.
    let opened: Vec<Value> = h
        .events()
        .await
        .into_iter()
        .filter(|e| e.kind == airlock_core::EventKind::Breaker && e.payload["state"] == "open")
        .map(|e| e.payload)
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    let anomaly = &opened[0]["anomaly"];
    assert!(anomaly["value"].as_f64().unwrap() >= 0.8, "{anomaly}");
    assert!(
        anomaly["features"]["reversals"].as_f64().unwrap() >= 5.0,
        "{anomaly}"
    );

    // Operators see it in the API and the metrics; agents may not look.
    let r = h.get("/v1/agents/bot", &h.op).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json["anomaly"]["value"].as_f64().unwrap() >= 0.8);
    assert!(
        r.json["breaker"]
            .as_str()
            .unwrap()
            .starts_with("quarantined")
    );
    assert!(
        !r.json["series"].as_array().unwrap().is_empty(),
        "{}",
        r.text
    );
    let r = h.get("/v1/agents", &h.op).await;
    assert!(
        r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["agent"] == "bot")
    );
    assert_eq!(
        h.get("/v1/agents/bot", &h.bot).await.status,
        StatusCode::FORBIDDEN
    );
    assert_error(
        &h.get("/v1/agents/nobody", &h.op).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let m = h.raw(Method::GET, "/metrics", None, Body::empty()).await;
    assert!(
        m.text
            .contains("airlock_agent_anomaly_score{agent=\"bot\"}"),
        "{}",
        m.text
    );

    // An operator resets it; the agent acts again, and the evidence the operator reviewed
    // does not quarantine it again on its next action.
    let r = h.post("/v1/agents/bot/unfreeze", &h.op, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(h.get("/v1/agents/bot", &h.op).await.json["breaker"].is_null());
    h.tick(3);
    let r = h.submit(&h.bot, scale("search", 15)).await;
    assert_ne!(r.json["reasons"], json!(["breaker-open"]), "{}", r.text);
    assert!(h.get("/v1/agents/bot", &h.op).await.json["breaker"].is_null());
}
