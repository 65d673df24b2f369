//! The dashboard's rules without a browser: `app(state).oneshot(request)` over the state
//! `live::build` makes (the real SQLite journal, the default pack, the live sandbox cloud).
//! Sign-in, sessions, CSRF and cross-site refusals, and the undo preview's conflicts; the
//! browser test (crates/airlock-cli/tests/dashboard_e2e.rs) drives the pages themselves.
#![cfg(test)]

use airlock_core::EventKind;
use airlock_gate::{PrincipalKind2, RevertCheck};
use airlock_server::config::Config;
use airlock_server::{AppState, RawConfig, app};
use airlock_store::{EventQuery, Journal};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;
use std::path::Path;
use tempfile::TempDir;
use tower::ServiceExt;

struct H {
    _dir: TempDir,
    state: AppState,
    router: Router,
    op: String,
    bot: String,
}

fn config(dir: &Path) -> Config {
    let mut c = RawConfig::default().validate(Path::new(".")).unwrap();
    c.store = dir.join("j.db").display().to_string();
    for s in &mut c.sim.as_mut().unwrap().world.services {
        s.demand.diurnal_amplitude = 0.0;
    }
    c
}

async fn harness_with(edit: impl FnOnce(&mut Config)) -> H {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    edit(&mut c);
    let (state, _sim) = airlock_server::live::build(&c).await.unwrap();
    let op = state
        .gate
        .issue_token("op", PrincipalKind2::Operator)
        .await
        .unwrap();
    let bot = state
        .gate
        .issue_token("bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    H {
        _dir: dir,
        router: app(state.clone()),
        state,
        op,
        bot,
    }
}

async fn harness() -> H {
    harness_with(|_| {}).await
}

struct Resp {
    status: StatusCode,
    cookies: Vec<String>,
    location: String,
    text: String,
}

impl H {
    async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let cookies = resp
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            cookies,
            location,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> Resp {
        let mut b = Request::get(uri).header(header::ACCEPT, "text/html");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, uri: &str, cookie: &str, form: &str, extra: &[(&str, &str)]) -> Resp {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, cookie);
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        self.send(b.body(Body::from(form.to_string())).unwrap())
            .await
    }

    /// Signs in with `token` through the form; returns the answer and the cookie header to
    /// send from then on.
    async fn sign_in(&self, token: &str) -> (Resp, String) {
        let form = self.get("/login", None).await;
        let nonce = value_of(&form.cookies, "airlock_login");
        let login_cookie = format!("airlock_login={nonce}");
        let body = format!("token={token}&_login={nonce}&next=%2Fagents");
        let r = self.post_form("/login", &login_cookie, &body, &[]).await;
        let session = value_of(&r.cookies, "airlock_session");
        (r, format!("airlock_session={session}"))
    }

    async fn killswitch(&self) -> bool {
        self.state.gate.killswitch().await
    }
}

/// The value a `Set-Cookie` list gives cookie `name` ("" when none does).
fn value_of(cookies: &[String], name: &str) -> String {
    cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap_or_default()
}

/// The CSRF token a page's forms carry.
fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"_csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 20;
    page[at..at + 64].to_string()
}

#[tokio::test]
async fn an_operator_signs_in_with_a_strict_httponly_cookie_and_lands_where_they_were_going() {
    let h = harness().await;
    let before = h.get("/agents", None).await;
    assert_eq!(before.status, StatusCode::SEE_OTHER);
    assert_eq!(before.location, "/login?next=/agents");
    let (r, cookie) = h.sign_in(&h.op).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.location, "/agents");
    let set = r
        .cookies
        .iter()
        .find(|c| c.starts_with("airlock_session="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    for page in [
        "/",
        "/approvals",
        "/changes",
        "/agents",
        "/journal",
        "/killswitch",
        "/reports",
    ] {
        let p = h.get(page, Some(&cookie)).await;
        assert_eq!(p.status, StatusCode::OK, "{page}: {}", p.text);
        assert!(
            p.text.contains("Signed in as <strong>op</strong>"),
            "{page}"
        );
    }
    // Only a path on this site is a place to go after signing in.
    let form = h.get("/login", None).await;
    let nonce = value_of(&form.cookies, "airlock_login");
    let r = h
        .post_form(
            "/login",
            &format!("airlock_login={nonce}"),
            &format!("token={}&_login={nonce}&next=%2F%2Fevil.example%2F", h.op),
            &[],
        )
        .await;
    assert_eq!(r.location, "/");
}

#[tokio::test]
async fn an_agents_token_never_signs_in() {
    let h = harness().await;
    let (r, cookie) = h.sign_in(&h.bot).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.text.contains("agents&#39; tokens cannot sign in")
            || r.text.contains("agents' tokens cannot sign in"),
        "{}",
        r.text
    );
    assert_eq!(cookie, "airlock_session=");
    let (bad, _) = h.sign_in("alk_not_a_token").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_sign_in_posted_without_the_forms_nonce_is_refused() {
    let h = harness().await;
    let r = h
        .post_form("/login", "", &format!("token={}&next=%2F", h.op), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(value_of(&r.cookies, "airlock_session").is_empty());
}

#[tokio::test]
async fn a_form_without_its_csrf_token_or_from_another_site_changes_nothing() {
    let h = harness().await;
    let (_, cookie) = h.sign_in(&h.op).await;
    let token = csrf(&h.get("/killswitch", Some(&cookie)).await.text);
    for (form, headers, why) in [
        ("state=on&confirm=yes".to_string(), vec![], "no token"),
        (
            format!("state=on&confirm=yes&_csrf={}", "0".repeat(64)),
            vec![],
            "a wrong token",
        ),
        (
            format!("state=on&confirm=yes&_csrf={token}"),
            vec![("origin", "http://evil.example")],
            "another origin",
        ),
        (
            format!("state=on&confirm=yes&_csrf={token}"),
            vec![("sec-fetch-site", "cross-site")],
            "a cross-site fetch",
        ),
    ] {
        let r = h.post_form("/killswitch", &cookie, &form, &headers).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{why}: {}", r.text);
        assert!(!h.killswitch().await, "{why} turned the kill switch on");
    }
    let r = h.post_form("/agents/bot/freeze", &cookie, "", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(h.state.gate.breaker("bot").await.is_none());
    // Unconfirmed, the kill switch stays off; confirmed with the token, it turns on.
    let r = h
        .post_form(
            "/killswitch",
            &cookie,
            &format!("state=on&_csrf={token}"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!h.killswitch().await);
    let host = [
        ("origin", "http://127.0.0.1:7070"),
        ("host", "127.0.0.1:7070"),
    ];
    let r = h
        .post_form(
            "/killswitch",
            &cookie,
            &format!("state=on&confirm=yes&_csrf={token}"),
            &host,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(h.killswitch().await);
    // A session's token does not work for another session.
    let (_, other) = h.sign_in(&h.op).await;
    let r = h
        .post_form(
            "/killswitch",
            &other,
            &format!("state=off&_csrf={token}"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(h.killswitch().await);
}

#[tokio::test]
async fn revoking_an_operators_token_ends_their_sessions_at_once() {
    let h = harness().await;
    let (_, cookie) = h.sign_in(&h.op).await;
    assert_eq!(h.get("/agents", Some(&cookie)).await.status, StatusCode::OK);
    let admin = airlock_gate::Principal {
        name: "root".into(),
        kind: PrincipalKind2::Admin,
    };
    h.state.gate.revoke_by("op", &admin).await.unwrap();
    let r = h.get("/agents", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location.starts_with("/login"));
    // And the live stream refuses it too.
    let live = h
        .send(
            Request::get("/live")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(live.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn with_the_dashboard_off_nothing_is_served_at_the_root() {
    let h = harness_with(|c| c.dashboard.enabled = false).await;
    assert_eq!(h.get("/", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.get("/login", None).await.status, StatusCode::NOT_FOUND);
}

fn scale(service: &str, replicas: u32) -> serde_json::Value {
    json!({"provider": "sim", "verb": "scale", "target": format!("sim:service/{service}"),
           "params": {"replicas": replicas}})
}

#[tokio::test]
async fn the_undo_preview_finds_the_conflict_the_undo_then_stops_at_and_changes_nothing() {
    let h = harness().await;
    h.state
        .gate
        .issue_token("bot2", PrincipalKind2::Agent)
        .await
        .unwrap();
    let submit = |who: &'static str, body: serde_json::Value| {
        let gate = h.state.gate.clone();
        async move {
            let req: airlock_core::ActionRequest = serde_json::from_value(body).unwrap();
            gate.submit_as(who, req).await.unwrap()
        }
    };
    // bot scales checkout twice and search once; then bot2 scales checkout again.
    let a = submit("bot", scale("checkout", 9)).await;
    let b = submit("bot", scale("checkout", 10)).await;
    let c = submit("bot", scale("search", 12)).await;
    for d in [&a, &b, &c] {
        assert!(d.change_id.is_some(), "{d:?}");
    }
    let other = submit("bot2", scale("checkout", 11)).await;
    assert!(other.change_id.is_some(), "{other:?}");

    let since = h.state.gate.now() - 3_600_000;
    let preview = h.state.gate.undo_preview("bot", since).await.unwrap();
    let ids: Vec<_> = preview.iter().map(|i| i.change_id.clone()).collect();
    assert_eq!(
        ids,
        vec![
            c.change_id.clone().unwrap(),
            b.change_id.clone().unwrap(),
            a.change_id.clone().unwrap()
        ],
        "newest first"
    );
    assert!(
        matches!(preview[0].check, RevertCheck::Clean { .. }),
        "{:?}",
        preview[0]
    );
    assert!(
        matches!(preview[1].check, RevertCheck::Conflict { .. }),
        "{:?}",
        preview[1]
    );
    assert!(
        preview[1].check.detail().contains("moved on"),
        "{:?}",
        preview[1]
    );
    assert!(preview[0].reached && preview[1].reached && !preview[2].reached);
    // The preview changed nothing.
    let reverted = h
        .state
        .journal
        .read(EventQuery {
            kind: Some(EventKind::Reverted),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(reverted.is_empty());
    // The undo does what the preview said: reverts search, stops at checkout.
    let outcomes = h.state.gate.undo("bot", since, "op").await.unwrap();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(matches!(
        outcomes[0],
        airlock_gate::BakeOutcome::Reverted { .. }
    ));
    assert!(matches!(
        outcomes[1],
        airlock_gate::BakeOutcome::NeedsAttention { .. }
    ));
    // The page shows the same preview.
    let (_, cookie) = h.sign_in(&h.op).await;
    let page = h.get("/agents/bot2/undo?since=1h", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("1 would be reverted"), "{}", page.text);
}

#[tokio::test]
async fn what_an_agent_writes_is_shown_as_text_never_run_as_markup() {
    let h = harness().await;
    // A hostile agent puts markup in the free text it controls (parameters are checked
    // against the verb's schema, names and addresses against their grammar).
    let evil = "<script>fetch('/approvals')</script><img src=x onerror=alert(1)>";
    let req: airlock_core::ActionRequest = serde_json::from_value(json!({
        "provider": "sim", "verb": "delete", "target": "sim:environment/prod",
        "intent": evil}))
    .unwrap();
    let d = h.state.gate.submit_as("bot", req).await.unwrap();
    let apr = d.approval_id.clone().expect("held");
    let (_, cookie) = h.sign_in(&h.op).await;
    for page in [
        format!("/approvals/{apr}"),
        format!("/actions/{}", d.id),
        "/".into(),
        "/journal".into(),
    ] {
        let p = h.get(&page, Some(&cookie)).await;
        assert_eq!(p.status, StatusCode::OK, "{page}");
        assert!(
            !p.text.contains("<script>fetch"),
            "{page} runs the agent's script"
        );
        assert!(
            !p.text.contains("<img src=x"),
            "{page} renders the agent's markup"
        );
    }
    let p = h.get(&format!("/approvals/{apr}"), Some(&cookie)).await;
    assert!(
        p.text.contains("&lt;script&gt;fetch("),
        "the intent is shown as text"
    );
}
