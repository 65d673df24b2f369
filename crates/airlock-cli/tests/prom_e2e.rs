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

/// A Debian package's program: `$VAR` if set, else `name` on the PATH.
fn binary(var: &str, name: &str, package: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is not installed: `apt-get install {package}` (scripts/test.sh does), or set {var}"
    );
}

/// Polls `url` until it answers 2xx.
async fn wait_ready(url: &str, log: &std::path::Path) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!(
        "{url} was not ready in 30 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
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
        let child = Command::new(binary("AIRLOCK_PROMETHEUS", "prometheus", "prometheus"))
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
        wait_ready(&format!("{}/-/ready", p.url), &dir.join("prometheus.log")).await;
        p
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

/// Alertmanager (Debian's `prometheus-alertmanager`) on a free port, killed when dropped.
struct Alertmanager {
    child: Child,
    url: String,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    async fn start(dir: &std::path::Path) -> Self {
        let port = free_port();
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: blackhole\n  group_wait: 0s\nreceivers:\n  - name: blackhole\n",
        )
        .unwrap();
        let log = dir.join("alertmanager.log");
        let child = Command::new(binary(
            "AIRLOCK_ALERTMANAGER",
            "prometheus-alertmanager",
            "prometheus-alertmanager",
        ))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
        let am = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_ready(&format!("{}/-/ready", am.url), &log).await;
        am
    }

    /// The alerts Alertmanager holds now.
    async fn alerts(&self) -> Vec<Value> {
        reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    }
}

/// A JSON webhook that keeps what it is sent.
async fn webhook() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// A directory whose server judges changes on Prometheus at `prom_port`.
async fn setup(prom_port: u16, missing: &str) -> Env {
    setup_with(prom_port, missing, "").await
}

async fn setup_with(prom_port: u16, missing: &str, extra: &str) -> Env {
    let env = Env::new(&world(), "", 3).await;
    std::fs::write(
        &env.config,
        format!(
            "[server]\npoll_interval_ms = 1000\n\n[store]\nurl = '{}'\n\n\
             [bake]\nwindow_s = 8\njudge_window_s = 2\nmin_requests = 10\nmissing = \"{missing}\"\n\n\
             [guards]\nmutations_per_minute = 1000\nbreaker_reverts = 100\n\n\
             [sim]\nworld = 'world.toml'\ntime_factor = 20\ntick_s = 1\n\n\
             [watch]\nsource = \"prometheus\"\nprometheus_url = \"http://127.0.0.1:{prom_port}\"\n\n{extra}",
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
        let v = server.bad_deploy_reverted(&env.bot, &service).await;
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

/// Regression test for "the Prometheus adapter turns a missing error or latency series into
/// 0" (an outside review): a service whose error counter has no series is missing data, so
/// with `missing = "breach"` a harmless change is reverted for missing data instead of
/// settling on errors nobody counted.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_error_series_is_missing_data_and_the_rule_applies() {
    let prom_port = free_port();
    let env = setup(prom_port, "breach").await;
    // The error counter points at a metric nobody exports; requests and latency are real.
    let cfg = std::fs::read_to_string(&env.config).unwrap().replace(
        "source = \"prometheus\"\n",
        "source = \"prometheus\"\nerrors = 'airlock_sim_unexported_errors_total{service=\"$service\"}'\n",
    );
    assert!(cfg.contains("unexported"), "{cfg}");
    std::fs::write(&env.config, cfg).unwrap();
    let server = env.serve(&[]).await;
    let target = server.url.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(env.dir.path(), prom_port, &target).await;
    prom.wait_for_series("airlock_sim_requests_total", 10).await;
    prom.wait_for_series("airlock_sim_latency_p99_ms", 10).await;
    let v = server
        .applied(&env.bot, &action("scale", "s2", json!({"replicas": 5})))
        .await;
    let change = text(&v["change_id"]).to_string();
    let done = server
        .wait_for(&env.bot, text(&v["id"]), &["reverted", "settled"], 200)
        .await;
    assert_eq!(done["status"], "reverted", "{done}\n{}", server.log());
    let breach = &server.events(&env.op, "breach", &change).await[0];
    assert_eq!(breach["payload"]["rule"], "missing data", "{breach}");
    assert!(server.events(&env.op, "settled", &change).await.is_empty());
    drop(prom);
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

#[tokio::test(flavor = "multi_thread")]
async fn reverts_and_the_kill_switch_page_alertmanager_and_a_webhook_and_resolve() {
    let prom_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let am = Alertmanager::start(dir.path()).await;
    let (hook_url, hooked) = webhook().await;
    let extra = format!(
        "[[alert]]\nname = \"oncall\"\nkind = \"alertmanager\"\nurl = \"{}\"\n\n\
         [[alert]]\nname = \"chat\"\nkind = \"webhook\"\nurl = \"{hook_url}\"\n",
        am.url
    );
    let env = setup_with(prom_port, "ignore", &extra).await;
    let server = env.serve(&[]).await;
    let target = server.url.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(env.dir.path(), prom_port, &target).await;
    prom.wait_for_series("airlock_sim_requests_total", 10).await;

    let v = server.bad_deploy_reverted(&env.bot, "s3").await;
    let change = text(&v["change_id"]).to_string();
    // Alertmanager holds the revert's alert, labelled with the change.
    let mut held = Vec::new();
    for _ in 0..100 {
        held = am.alerts().await;
        if held
            .iter()
            .any(|a| a["labels"]["change_id"] == change.as_str())
        {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let alert = held
        .iter()
        .find(|a| a["labels"]["change_id"] == change.as_str())
        .unwrap_or_else(|| panic!("no alert for {change} in {held:?}\n{}", server.log()));
    assert_eq!(
        alert["labels"]["alertname"], "AirlockChangeReverted",
        "{alert}"
    );
    assert_eq!(alert["labels"]["agent"], "bot", "{alert}");
    // The outbox is journaled on the change: queued for each receiver before any attempt,
    // then delivered to each.
    let mut sent = Vec::new();
    let delivered = |sent: &[Value]| {
        sent.iter()
            .filter(|e| e["payload"]["delivery"] == "delivered")
            .count()
    };
    for _ in 0..100 {
        sent = server.events(&env.op, "alert", &change).await;
        if delivered(&sent) >= 2 {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(delivered(&sent), 2, "one per receiver: {sent:?}");
    let queued: Vec<&Value> = sent
        .iter()
        .filter(|e| e["payload"]["delivery"] == "queued")
        .collect();
    assert_eq!(queued.len(), 2, "{sent:?}");
    for d in sent
        .iter()
        .filter(|e| e["payload"]["delivery"] == "delivered")
    {
        assert_eq!(d["payload"]["ok"], true, "{d}");
        let q = d["payload"]["queued_seq"].as_i64().unwrap();
        assert!(
            queued
                .iter()
                .any(|e| e["seq"] == q && e["payload"]["receiver"] == d["payload"]["receiver"]),
            "queued before delivered: {sent:?}"
        );
    }
    // The change's timeline has the detection, the revert and the alerts, in order.
    let tl = server
        .get(&format!("/v1/changes/{change}/timeline"), &env.op)
        .await;
    let (applied, detected, reverted) = (
        tl["applied_at"].as_i64().unwrap(),
        tl["detected_at"].as_i64().unwrap(),
        tl["reverted_at"].as_i64().unwrap(),
    );
    assert!(applied <= detected && detected <= reverted, "{tl}");
    let kinds: Vec<&str> = tl["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for want in [
        "request",
        "verdict",
        "applied",
        "evaluation",
        "breach",
        "reverted",
        "alert",
    ] {
        assert!(kinds.contains(&want), "no {want} in {kinds:?}");
    }

    // The kill switch fires, then resolves when it is turned off.
    env.operator(&server, &["killswitch", "on"]).await.code(0);
    env.operator(&server, &["killswitch", "off"]).await.code(0);
    let mut statuses = Vec::new();
    for _ in 0..100 {
        statuses = hooked
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h["alert"] == "AirlockKillSwitchOn")
            .map(|h| h["status"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>();
        if statuses.len() >= 2 {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        statuses,
        ["firing", "resolved"],
        "{:?}",
        hooked.lock().unwrap()
    );
    // The webhook and Alertmanager are delivered to separately: Alertmanager may take the
    // resolution a moment after the webhook did.
    let mut ks: Vec<Value> = Vec::new();
    for _ in 0..100 {
        ks = am
            .alerts()
            .await
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == "AirlockKillSwitchOn")
            .collect();
        if ks.iter().all(|a| a["status"]["state"] != "active") {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(
        ks.iter().all(|a| a["status"]["state"] != "active"),
        "the resolved kill-switch alert is no longer active: {ks:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_slo_query_rule_judges_the_change_and_its_evaluations_are_recorded() {
    let prom_port = free_port();
    // The built-in rules are switched off: only the `[[slo]]` query can catch the change.
    let extra = "[[slo]]\nname = \"error-ratio\"\n\
        query = 'sum(rate(airlock_sim_errors_total{service=\"$service\"}[5s])) / sum(rate(airlock_sim_requests_total{service=\"$service\"}[5s]))'\n\
        comparator = \"<=\"\nthreshold = 0.05\nmin_samples = 1\nmissing = \"ignore\"\n";
    let env = setup_with(prom_port, "ignore", extra).await;
    let text_cfg = std::fs::read_to_string(&env.config).unwrap().replace(
        "min_requests = 10\n",
        "min_requests = 10\navailability = 0.0\np99_ms = 1000000.0\n",
    );
    std::fs::write(&env.config, text_cfg).unwrap();
    let server = env.serve(&[]).await;
    let target = server.url.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(env.dir.path(), prom_port, &target).await;
    prom.wait_for_series("airlock_sim_requests_total", 10).await;
    // Enough history for a 5 s rate before the change.
    prom.wait_for_series(
        "sum(rate(airlock_sim_requests_total{service=\"s5\"}[5s])) > 0",
        1,
    )
    .await;
    let v = server.bad_deploy_reverted(&env.bot, "s5").await;
    let change = text(&v["change_id"]).to_string();
    let breach = &server.events(&env.op, "breach", &change).await[0];
    assert_eq!(breach["payload"]["rule"], "error-ratio <= 0.05", "{breach}");
    assert!(
        breach["payload"]["value"].as_f64().unwrap() > 0.05,
        "{breach}"
    );
    // The change record keeps the baseline and every evaluation with its value.
    let rec = server.get(&format!("/v1/changes/{change}"), &env.op).await;
    let record = &rec["record"];
    assert_eq!(record["query_baseline"][0]["rule"], "error-ratio", "{rec}");
    assert!(
        record["query_baseline"][0]["value"].as_f64().unwrap() < 0.05,
        "the baseline was healthy: {rec}"
    );
    let evals = record["evaluations"].as_array().unwrap();
    assert!(
        evals
            .iter()
            .any(|e| e["rule"] == "error-ratio" && e["judgement"] == "breach"),
        "{evals:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slo_rules_are_checked_by_config_validate() {
    let env = Env::new(&world(), "", 3).await;
    let bad = env.dir.path().join("slo.toml");
    std::fs::write(
        &bad,
        "[[slo]]\nname = \"error-ratio\"\nquery = 'sum(rate(errors_total[5s]) /'\n\
         comparator = \"<=\"\nthreshold = 0.05\n",
    )
    .unwrap();
    let out = env
        .airlock(&["config", "validate", bad.to_str().unwrap()])
        .await
        .code(2);
    assert!(out.stderr.contains("slo[0].query:"), "{}", out.stderr);
    assert!(out.stderr.contains("not valid PromQL"), "{}", out.stderr);
    assert!(
        out.stderr.contains("slo: query rules need"),
        "{}",
        out.stderr
    );
}
