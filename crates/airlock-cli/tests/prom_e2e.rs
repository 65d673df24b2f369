//! Baking on real signals: a real Prometheus (Debian's `prometheus`, started here on a free
//! loopback port) scrapes `airlock serve`'s `/metrics`, where the live simulator's services
//! export their counters, and the bake judge reads them back through PromQL — the path a
//! user's own services take. `scripts/test.sh` installs Prometheus; `AIRLOCK_PROMETHEUS`
//! may point at another binary.
//!
//! `AIRLOCK_TTM_RUNS=10 cargo test -p airlock-cli --test prom_e2e -- --nocapture` measures
//! time to mitigate over ten bad deploys (1 s poll, 1 s scrape) and prints the median.
#![cfg(test)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Ten identical services, so every measured deploy starts from a clean baseline.
fn world() -> String {
    let mut w = String::from(
        "name = \"prom-e2e\"\nduration = \"1h\"\n\n[agent]\nname = \"cost-cutter\"\n\
         params = { env = \"prod\", act_at = \"1h\" }\n\n[[region]]\nname = \"eu-west\"\n\
         azs = [\"eu-west-a\", \"eu-west-b\"]\n\n[[version]]\nname = \"bad\"\nerror_rate = 0.3\n",
    );
    for i in 0..10 {
        w.push_str(&format!(
            "\n[[service]]\nname = \"s{i}\"\nenv = \"prod\"\nregion = \"eu-west\"\nreplicas = 4\n\
             capacity_rps = 100\ndemand = {{ base_rps = 200 }}\n"
        ));
    }
    w
}

fn prometheus_binary() -> PathBuf {
    if let Ok(p) = std::env::var("AIRLOCK_PROMETHEUS") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join("prometheus");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "Prometheus is not installed: `apt-get install prometheus` (scripts/test.sh does), or set AIRLOCK_PROMETHEUS"
    );
}

/// A Prometheus process, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus on `port`, scraping `target` (`host:port`) every second, and waits
    /// until it is ready.
    async fn start(dir: &std::path::Path, port: u16, target: &str) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: airlock\n    scrape_interval: 1s\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let p = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{}/-/ready", p.url)).send().await
                && r.status().is_success()
            {
                return p;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "Prometheus was not ready in 30 s:\n{}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
    }

    /// Waits until Prometheus has scraped `query` with at least `n` series.
    async fn wait_for_series(&self, query: &str, n: usize) {
        let http = reqwest::Client::new();
        for _ in 0..300 {
            let url = reqwest::Url::parse_with_params(
                &format!("{}/api/v1/query", self.url),
                &[("query", query)],
            )
            .unwrap();
            if let Ok(r) = http.get(url).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["data"]["result"].as_array().is_some_and(|a| a.len() >= n)
            {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("Prometheus never had {n} series of `{query}`");
    }
}

/// A directory whose server judges changes on Prometheus at `prom_port`.
async fn setup(prom_port: u16, missing: &str) -> Env {
    let env = Env::new(&world(), "", 3).await;
    std::fs::write(
        &env.config,
        format!(
            "[server]\npoll_interval_ms = 1000\n\n[store]\nurl = '{}'\n\n\
             [bake]\nwindow_s = 8\njudge_window_s = 2\nmin_requests = 10\nmissing = \"{missing}\"\n\n\
             [guards]\nmutations_per_minute = 1000\nbreaker_reverts = 100\n\n\
             [sim]\nworld = 'world.toml'\ntime_factor = 20\ntick_s = 1\n\n\
             [watch]\nsource = \"prometheus\"\nprometheus_url = \"http://127.0.0.1:{prom_port}\"\n",
            env.store()
        ),
    )
    .unwrap();
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_deploy_is_judged_on_prometheus_and_reverted_within_seconds() {
    let runs: usize = std::env::var("AIRLOCK_TTM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 10);
    let prom_port = free_port();
    let env = setup(prom_port, "ignore").await;
    let server = env.serve(&[]).await;
    let target = server.url.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(env.dir.path(), prom_port, &target).await;
    prom.wait_for_series("airlock_sim_requests_total", 10).await;

    let mut ttm_ms = Vec::new();
    for i in 0..runs {
        let service = format!("s{i}");
        let (status, v) = server
            .post(
                "/v1/actions?wait=true&timeout_s=30",
                &env.bot,
                &action("deploy", &service, json!({"version": "bad"})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["status"], "reverted", "{v}\n{}", server.log());
        let change = text(&v["change_id"]).to_string();
        let applied = &server.events(&env.op, "applied", &change).await[0];
        let breach = &server.events(&env.op, "breach", &change).await[0];
        let reverted = &server.events(&env.op, "reverted", &change).await[0];
        assert!(
            text(&breach["payload"]["rule"]).contains("availability"),
            "{breach}"
        );
        let (t0, t1, t2) = (
            applied["ts"].as_i64().unwrap(),
            breach["ts"].as_i64().unwrap(),
            reverted["ts"].as_i64().unwrap(),
        );
        assert!(t0 <= t1 && t1 <= t2, "{applied} {breach} {reverted}");
        println!(
            "run {i}: {service} applied → breach detected {} ms → reverted {} ms",
            t1 - t0,
            t2 - t0
        );
        ttm_ms.push(t2 - t0);
        assert_eq!(server.describe(&env.bot, &service).await["version"], "v1");
    }
    ttm_ms.sort_unstable();
    println!(
        "time to mitigate over {runs} runs: median {} ms, min {} ms, max {} ms",
        ttm_ms[ttm_ms.len() / 2],
        ttm_ms[0],
        ttm_ms[ttm_ms.len() - 1]
    );
    drop(prom);
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_down_mid_bake_is_missing_data_and_the_rule_applies() {
    let prom_port = free_port();
    let env = setup(prom_port, "breach").await;
    let server = env.serve(&[]).await;
    let target = server.url.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(env.dir.path(), prom_port, &target).await;
    prom.wait_for_series("airlock_sim_requests_total", 10).await;
    // A harmless change, then Prometheus goes away while it bakes.
    let v = server
        .applied(&env.bot, &action("scale", "s1", json!({"replicas": 5})))
        .await;
    drop(prom);
    let change = text(&v["change_id"]).to_string();
    let done = server
        .wait_for(&env.bot, text(&v["id"]), &["reverted"], 200)
        .await;
    assert_eq!(done["status"], "reverted", "{done}");
    let breach = &server.events(&env.op, "breach", &change).await[0];
    assert_eq!(breach["payload"]["rule"], "missing data", "{breach}");
    // The server said why and kept serving.
    assert!(
        server.log().contains("no signals from Prometheus"),
        "{}",
        server.log()
    );
    let health = server
        .http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_promql_query_is_a_clear_config_error() {
    let env = Env::new(&world(), "", 3).await;
    let bad = env.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[watch]\nsource = \"prometheus\"\nrequests = 'http_requests_total{service=\"$service\"'\n\
         errors = 'rate(errors_total[1m])'\n",
    )
    .unwrap();
    let out = env
        .airlock(&["config", "validate", bad.to_str().unwrap()])
        .await
        .code(2);
    assert!(out.stderr.contains("watch.requests:"), "{}", out.stderr);
    assert!(out.stderr.contains("not valid PromQL"), "{}", out.stderr);
    assert!(out.stderr.contains("watch.errors:"), "{}", out.stderr);
}
