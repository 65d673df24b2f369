//! Operator commands against a running server: approve, deny, revert, undo, freeze,
//! unfreeze, killswitch, approvals and tail.

use crate::BadInput;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::io::Write;
use std::process::ExitCode;

/// Where the server is and who we are.
#[derive(Args, Clone)]
pub struct Remote {
    /// The server's base URL.
    #[arg(
        long,
        env = "AIRLOCK_URL",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub url: String,
    /// An operator's bearer token.
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A small JSON client that turns API errors into readable messages.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(url: &str, token: Option<String>) -> Result<Self> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(
                BadInput(format!("--url `{url}` must start with http:// or https://")).into(),
            );
        }
        let http = reqwest::Client::builder()
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn finish(
        &self,
        resp: std::result::Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Value> {
        let resp = resp.with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        // A revert that found the resource moved on answers 409 with its outcome: that is a
        // result to show, not a failure of the request.
        if status.is_success() || (status.as_u16() == 409 && body["outcome"] == "needs_attention") {
            return Ok(body);
        }
        let msg = body["error"]["message"]
            .as_str()
            .unwrap_or("no detail")
            .to_string();
        let mut err = format!("the server at {} answered {status}: {msg}", self.base);
        if status.as_u16() == 401 {
            // Tokens belong to one store: the usual cause is a token made in another one.
            err.push_str(
                "; a token works only with the server whose store issued it (`airlock token create` writes to the store picked by --store, AIRLOCK_STORE or the config)",
            );
        }
        if status.is_client_error() {
            Err(BadInput(err).into())
        } else {
            Err(anyhow::anyhow!(err))
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let r = self.req(reqwest::Method::GET, path).send().await;
        self.finish(r).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let r = self
            .req(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await;
        self.finish(r).await
    }
}

fn client(r: &Remote) -> Result<Client> {
    if r.token.is_none() {
        return Err(BadInput(format!(
            "no token for the server at {}: pass --token or set AIRLOCK_TOKEN to an operator token",
            r.url
        ))
        .into());
    }
    Client::new(&r.url, r.token.clone())
}

fn print(r: &Remote, v: &Value, line: impl FnOnce(&Value) -> String) -> Result<()> {
    if r.json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        println!("{}", line(v));
    }
    Ok(())
}

fn verdict_line(v: &Value) -> String {
    let reasons = v["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mut s = format!(
        "{} {}",
        v["id"].as_str().unwrap_or("?"),
        v["verdict"].as_str().unwrap_or("?")
    );
    if !reasons.is_empty() {
        s.push_str(&format!(" ({reasons})"));
    }
    if let Some(c) = v["change_id"].as_str() {
        s.push_str(&format!(", change {c}"));
    }
    if let Some(e) = v["error"].as_str() {
        s.push_str(&format!(", error: {e}"));
    }
    s
}

pub async fn approve(r: Remote, id: String, reason: String) -> Result<ExitCode> {
    let v = client(&r)?
        .post(
            &format!("/v1/approvals/{id}"),
            &json!({"decision": "approve", "reason": reason}),
        )
        .await?;
    print(&r, &v, verdict_line)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn deny(r: Remote, id: String, reason: String) -> Result<ExitCode> {
    let v = client(&r)?
        .post(
            &format!("/v1/approvals/{id}"),
            &json!({"decision": "deny", "reason": reason}),
        )
        .await?;
    print(&r, &v, verdict_line)?;
    Ok(ExitCode::SUCCESS)
}

fn outcome_line(v: &Value) -> String {
    match v["outcome"].as_str() {
        Some("reverted") => format!("reverted {}", v["change_id"].as_str().unwrap_or("?")),
        Some("needs_attention") => format!(
            "NOT reverted {}: {} (needs attention; nothing was overwritten)",
            v["change_id"].as_str().unwrap_or("?"),
            v["detail"].as_str().unwrap_or("")
        ),
        _ => v.to_string(),
    }
}

pub async fn revert(r: Remote, change: String) -> Result<ExitCode> {
    let v = client(&r)?
        .post(&format!("/v1/changes/{change}/revert"), &json!({}))
        .await?;
    print(&r, &v, outcome_line)?;
    Ok(if v["outcome"] == "needs_attention" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn undo(r: Remote, agent: String, since: String) -> Result<ExitCode> {
    let v = client(&r)?
        .post("/v1/undo", &json!({"agent": agent, "since": since}))
        .await?;
    let stopped = v["stopped_on_conflict"].as_bool().unwrap_or(false);
    print(&r, &v, |v| {
        let mut lines: Vec<String> = v["items"]
            .as_array()
            .map(|a| a.iter().map(outcome_line).collect())
            .unwrap_or_default();
        lines.push(format!(
            "{} change(s) reverted{}",
            v["reverted"],
            if stopped {
                "; stopped at a conflict"
            } else {
                ""
            }
        ));
        lines.join("\n")
    })?;
    Ok(if stopped {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn freeze(r: Remote, agent: String, on: bool) -> Result<ExitCode> {
    let path = format!(
        "/v1/agents/{agent}/{}",
        if on { "freeze" } else { "unfreeze" }
    );
    let v = client(&r)?.post(&path, &json!({})).await?;
    print(&r, &v, |_| {
        format!(
            "{agent}: {}",
            if on {
                "frozen (mutations are held)"
            } else {
                "unfrozen"
            }
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What `airlock killswitch` does.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Turn it on: every mutation of every agent is denied.
    On,
    /// Turn it off.
    Off,
    /// Show whether it is on (the same as no argument).
    Status,
}

fn killswitch_line(on: bool) -> String {
    if on {
        "kill switch on: every mutation is denied (reads, reverts and undo still work)".into()
    } else {
        "kill switch off".into()
    }
}

pub async fn killswitch(r: Remote, state: Option<Switch>) -> Result<ExitCode> {
    let c = client(&r)?;
    let v = match state.unwrap_or(Switch::Status) {
        Switch::Status => c.get("/v1/killswitch").await?,
        Switch::On => c.post("/v1/killswitch", &json!({"state": "on"})).await?,
        Switch::Off => c.post("/v1/killswitch", &json!({"state": "off"})).await?,
    };
    let on = match v["killswitch"].as_str() {
        Some("on") => true,
        Some("off") => false,
        _ => {
            return Err(anyhow::anyhow!(
                "the server at {} answered without the kill switch's state: {v}",
                r.url
            ));
        }
    };
    print(&r, &v, |_| killswitch_line(on))?;
    Ok(ExitCode::SUCCESS)
}

pub async fn agents(r: Remote) -> Result<ExitCode> {
    let v = client(&r)?.get("/v1/agents").await?;
    if r.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header([
        "agent",
        "anomaly",
        "furthest from usual",
        "mutations (window)",
        "blocked",
        "reversals",
        "breaker",
    ]);
    for a in v["items"].as_array().into_iter().flatten() {
        let s = &a["anomaly"];
        let f = |k: &str| {
            s["features"][k]
                .as_f64()
                .map_or("-".into(), |x| format!("{x:.0}"))
        };
        let top = match (s["top"][0].as_str(), s["top"][1].as_f64()) {
            (Some(name), Some(z)) => format!("{name} (z {z:.1})"),
            _ => "-".into(),
        };
        t.add_row([
            a["agent"].as_str().unwrap_or("").to_string(),
            s["value"]
                .as_f64()
                .map_or("-".into(), |x| format!("{x:.2}")),
            top,
            f("mutations"),
            f("blocked"),
            f("reversals"),
            a["breaker"].as_str().unwrap_or("closed").to_string(),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

pub async fn approvals(r: Remote) -> Result<ExitCode> {
    let v = client(&r)?.get("/v1/approvals").await?;
    if r.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header([
        "approval",
        "agent",
        "risk",
        "reasons",
        "plan",
        "approved by",
    ]);
    for a in v["items"].as_array().into_iter().flatten() {
        let join = |k: &Value| {
            k.as_array()
                .map(|x| {
                    x.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        t.add_row([
            a["id"].as_str().unwrap_or("").to_string(),
            a["agent"].as_str().unwrap_or("").to_string(),
            a["risk"].as_str().unwrap_or("").to_string(),
            join(&a["reasons"]),
            a["plan"]["summary"].as_str().unwrap_or("").to_string(),
            format!(
                "{} of {}",
                a["approved_by"].as_array().map_or(0, Vec::len),
                a["approvals_needed"]
            ),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

/// Follows the event stream until interrupted; readable lines or JSON lines. A closed
/// output (`airlock tail | head`) ends it quietly.
pub async fn tail(r: Remote, from: Option<i64>) -> Result<ExitCode> {
    match follow(r, from).await {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

async fn follow(r: Remote, from: Option<i64>) -> Result<ExitCode> {
    let c = client(&r)?;
    let mut req = c
        .req(reqwest::Method::GET, "/v1/events")
        .header("accept", "text/event-stream");
    if let Some(f) = from {
        req = req.header("last-event-id", f.to_string());
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {}", r.url))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        return Err(BadInput(format!(
            "the server at {} answered {status}: {}",
            r.url,
            body["error"]["message"].as_str().unwrap_or("")
        ))
        .into());
    }
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("the event stream broke")?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let data: String = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if data.is_empty() {
                continue;
            }
            let Ok(ev) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            if r.json {
                writeln!(out, "{data}")?;
            } else {
                writeln!(out, "{}", tail_line(&ev))?;
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One event as `airlock tail` prints it: seq, kind, agent, change or action, and what
/// happened in words. A kind this build does not know (a newer server) shows its payload.
fn tail_line(ev: &Value) -> String {
    let kind = ev["kind"].as_str().unwrap_or("");
    let summary = match airlock_core::EventKind::parse(kind) {
        Some(k) => crate::journal::summarize(k, &ev["payload"]),
        None => ev["payload"].to_string(),
    };
    format!(
        "#{:<6} {:<16} {:<20} {:<22} {}",
        ev["seq"].to_string(),
        kind,
        ev["agent"].as_str().unwrap_or("-"),
        ev["change_id"]
            .as_str()
            .or(ev["action_id"].as_str())
            .unwrap_or("-"),
        summary
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines_are_words_for_known_kinds() {
        let ev = serde_json::json!({"seq": 7, "kind": "killswitch", "agent": null,
            "action_id": null, "change_id": null, "payload": {"on": true, "by": "alice"}});
        let line = tail_line(&ev);
        assert!(line.starts_with("#7 "), "{line}");
        assert!(line.ends_with("kill switch on by alice"), "{line}");
        let ev = serde_json::json!({"seq": 8, "kind": "agent", "agent": "bot",
            "payload": {"name": "bot", "kind": "agent", "action": "token_issued"}});
        assert!(tail_line(&ev).ends_with("agent `bot`: token issued"));
    }
}
