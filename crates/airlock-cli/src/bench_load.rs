//! Saturation for `airlock bench http`: closed-loop workers sending as fast as they are
//! answered, for reads, for mutations on distinct resources, and a budget checked under
//! concurrency, each against the same load on a no-op handler.

use crate::bench::{InProcess, now, percentile};
use anyhow::Result;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// What a closed-loop run measured.
pub(crate) struct Load {
    pub sent: usize,
    /// Answered with a success status.
    pub ok: usize,
    /// Answered `allow` (counted only where the body is read).
    pub allowed: usize,
    pub elapsed_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Load {
    pub fn per_s(&self) -> f64 {
        self.ok as f64 / self.elapsed_s.max(1e-9)
    }

    pub fn row(&self, target: &str) -> Value {
        json!({"target": target, "sent": self.sent, "ok": self.ok, "allowed": self.allowed,
               "per_s": self.per_s(), "p50_ms": self.p50_ms, "p99_ms": self.p99_ms})
    }
}

/// Builds worker `w`'s `i`-th request.
pub(crate) type MakeRequest = Arc<dyn Fn(usize, usize) -> reqwest::RequestBuilder + Send + Sync>;

/// `workers` closed loops for `seconds` (or until each has sent `per_worker`); `read_verdict`
/// parses each answer to count `allow`s.
pub(crate) async fn closed_loop(
    workers: usize,
    seconds: f64,
    per_worker: Option<usize>,
    read_verdict: bool,
    make: MakeRequest,
) -> Result<Load> {
    let start = now();
    let deadline = Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let (mut sent, mut ok, mut allowed, mut lat) = (0, 0, 0, Vec::new());
            while start.elapsed() < deadline && per_worker.is_none_or(|n| sent < n) {
                let req = make(w, sent);
                sent += 1;
                let t = now();
                let Ok(resp) = req.send().await else {
                    continue;
                };
                let good = resp.status().is_success();
                let verdict = if read_verdict {
                    resp.json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v.get("verdict").and_then(Value::as_str).map(str::to_string))
                } else {
                    resp.bytes().await.ok().map(|_| String::new())
                };
                if good && verdict.is_some() {
                    ok += 1;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    allowed += usize::from(verdict.as_deref() == Some("allow"));
                }
            }
            (sent, ok, allowed, lat)
        }));
    }
    let (mut sent, mut ok, mut allowed, mut lat) = (0, 0, 0, Vec::new());
    for t in tasks {
        let (s, o, a, l) = t.await?;
        sent += s;
        ok += o;
        allowed += a;
        lat.extend(l);
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(Load {
        sent,
        ok,
        allowed,
        elapsed_s,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
    })
}

/// A sandbox world of `n` staging services, for mutations that never wait for each other.
pub(crate) fn world(n: usize) -> String {
    let mut w = String::from(
        "name = \"bench\"\nseed = 1\ntick = \"1s\"\nduration = \"1h\"\n\n[agent]\nname = \"noop\"\n\n[[region]]\nname = \"r1\"\nazs = [\"r1-a\", \"r1-b\", \"r1-c\"]\n",
    );
    for i in 0..n {
        w.push_str(&format!(
            "\n[[service]]\nname = \"s{i}\"\nenv = \"staging\"\nregion = \"r1\"\nreplicas = 4\ncapacity_rps = 1000\ndemand = {{ base_rps = 10, noise = 0.0 }}\n"
        ));
    }
    w
}

/// The request scaling service `k` to `replicas`.
pub(crate) fn scale(k: usize, replicas: u32) -> Value {
    json!({"provider": "sim", "verb": "scale", "target": format!("sim:service/s{k}"),
           "params": {"replicas": replicas}, "intent": "benchmark"})
}

/// Mutations on distinct resources: worker `w` of `workers` scales only its own services
/// (`w`, `w + workers`, …), each up by one, so no two requests in flight share a target.
pub(crate) fn mutations(
    gate: &InProcess,
    client: &reqwest::Client,
    services: usize,
    workers: usize,
) -> MakeRequest {
    let (url, token, client) = (
        format!("{}/v1/actions", gate.base),
        gate.token.clone(),
        client.clone(),
    );
    let per_worker = (services / workers).max(1);
    Arc::new(move |w, i| {
        let k = (w + (i % per_worker) * workers) % services;
        let replicas = 5 + (i / per_worker) as u32;
        client
            .post(&url)
            .bearer_auth(&token)
            .json(&scale(k, replicas))
    })
}
