//! A signal source that hangs must stall only the decision that reads it: here Prometheus
//! accepts the connection and never answers, and other agents' decisions (and operators'
//! calls) complete while a mutation waits on it.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on setup errors"
)]

use airlock_gate::PrincipalKind2;
use airlock_server::RawConfig;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::ServiceExt;

/// A "Prometheus" that accepts connections, reads nothing back, answers nothing, and
/// keeps each socket open. Returns its address and how many connections it accepted.
async fn stalled_prometheus() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            open.push(socket);
        }
    });
    (format!("http://{addr}"), accepted)
}

fn request(method: Method, uri: &str, token: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        })
        .unwrap()
}

async fn call(router: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_prometheus_does_not_delay_other_agents_decisions() {
    let (url, accepted) = stalled_prometheus().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[store]\nurl = \"{}\"\n[watch]\nsource = \"prometheus\"\nprometheus_url = \"{url}\"\ntimeout_ms = 120000\n",
        dir.path().join("airlock.db").display()
    );
    let config = RawConfig::parse(&text, "test")
        .unwrap()
        .validate(dir.path())
        .unwrap();
    let (state, _sim) = airlock_server::live::build(&config).await.unwrap();
    let slow = state
        .gate
        .issue_token("slow-bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    let other = state
        .gate
        .issue_token("other-bot", PrincipalKind2::Agent)
        .await
        .unwrap();
    let op = state
        .gate
        .issue_token("op", PrincipalKind2::Operator)
        .await
        .unwrap();
    let router = airlock_server::app(state);

    // A mutation whose health read goes to the stalled Prometheus.
    let stuck = {
        let router = router.clone();
        let req = request(
            Method::POST,
            "/v1/actions",
            &slow,
            json!({"provider": "sim", "verb": "scale", "target": "sim:service/checkout", "params": {"replicas": 7}}),
        );
        tokio::spawn(async move { call(&router, req).await })
    };
    // Wait until it is really waiting on Prometheus.
    for _ in 0..600 {
        if accepted.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "the mutation never asked Prometheus"
    );

    // Meanwhile another agent's decisions, on other resources, complete. The time limit
    // only turns a hang into a failure (the stalled query itself waits 120 s).
    let others = async {
        let read = call(
            &router,
            request(
                Method::POST,
                "/v1/actions",
                &other,
                json!({"provider": "sim", "verb": "read", "target": "sim:service/search"}),
            ),
        )
        .await;
        let read2 = call(
            &router,
            request(
                Method::POST,
                "/v1/actions",
                &other,
                json!({"provider": "sim", "verb": "read", "target": "sim:service/payments"}),
            ),
        )
        .await;
        let holds = call(
            &router,
            request(Method::GET, "/v1/approvals", &op, Value::Null),
        )
        .await;
        let kill = call(
            &router,
            request(Method::GET, "/v1/killswitch", &op, Value::Null),
        )
        .await;
        (read, read2, holds, kill)
    };
    let (read, read2, holds, kill) = tokio::time::timeout(Duration::from_secs(30), others)
        .await
        .expect("other agents' decisions waited on the stalled Prometheus");
    assert_eq!(read.0, StatusCode::OK, "{read:?}");
    assert_eq!(read.1["verdict"], "allow", "{read:?}");
    assert_eq!(read.1["status"], "done", "{read:?}");
    assert_eq!(read2.1["verdict"], "allow", "{read2:?}");
    assert_eq!(holds.0, StatusCode::OK);
    assert_eq!(kill.1["killswitch"], "off");
    assert!(
        !stuck.is_finished(),
        "the mutation reading the stalled source is still waiting: the others did not wait for it"
    );
    stuck.abort();
}
