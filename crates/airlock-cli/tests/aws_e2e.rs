//! The December 2025 incident replayed on the AWS APIs (`examples/aws/`): a real
//! `airlock serve` with the `aws` provider and CloudWatch signals, in front of a real
//! `moto_server`, set up by the example's own script.
//!
//! A prod stack exports values two other stacks import; its Auto Scaling group serves with
//! elevated errors. An agent with operator rights asks to delete the stack (to recreate
//! it). Through Airlock it is denied with the reasons; the safe variant it asks instead (a
//! parameter update through a change set) is held for an operator, approved, baked on
//! CloudWatch and reverted when its errors get worse. The same request made directly with
//! the SDK deletes the stack and everything in it.
#![cfg(test)]

#[path = "../../../testsupport/moto.rs"]
mod moto;

mod common;

use common::*;
use moto::Moto;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

fn example(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/aws")
        .join(file)
}

const CREDENTIALS: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// Runs `python3 ARGS` against the moto at `url`, with test credentials.
async fn python(url: &str, args: Vec<String>) -> std::process::Output {
    let mut cmd = Command::new("python3");
    cmd.args(args)
        .env("AWS_ENDPOINT_URL", url)
        .envs(CREDENTIALS);
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap()
}

/// Runs the example's script against `moto`; returns what it printed.
async fn replay(moto: &Moto, args: &[&str]) -> String {
    let mut all = vec![example("replay.py").display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    ok(python(&moto.url, all).await)
}

/// Runs a Python snippet (boto3) against `moto`; returns what it printed.
async fn boto3(moto: &Moto, code: &str) -> String {
    ok(python(&moto.url, vec!["-c".into(), code.into()]).await)
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn status(moto: &Moto) -> Value {
    serde_json::from_str(replay(moto, &["status"]).await.trim()).unwrap()
}

fn aws(verb: &str, target: &str, params: Value) -> Value {
    json!({"provider": "aws", "verb": verb, "target": target, "params": params,
           "intent": "billing is failing: delete and recreate the environment"})
}

const STACK: &str = "aws:stack/us-east-1/billing-prod";

/// moto with the replay's account, and `airlock serve` on the example's config (with a bake
/// short enough for a test) in front of it.
async fn replay_setup() -> (Moto, Env, Server) {
    replay_setup_with(&["setup"]).await
}

async fn replay_setup_with(setup: &[&str]) -> (Moto, Env, Server) {
    replay_setup_env(setup, &[]).await
}

/// [`replay_setup_with`], with more environment variables for the server.
async fn replay_setup_env(setup: &[&str], extra: &[(&str, &str)]) -> (Moto, Env, Server) {
    let moto = Moto::start().await;
    replay(&moto, setup).await;
    let config = std::fs::read_to_string(example("airlock.toml"))
        .unwrap()
        .replace("poll_interval_ms = 500", "poll_interval_ms = 200")
        .replace("window_s = 120", "window_s = 30")
        .replace("judge_window_s = 60", "judge_window_s = 3");
    let env = Env::with_config(&config).await;
    let server = serve(&env, &moto, extra).await;
    (moto, env, server)
}

/// `airlock serve` on `env` in front of `moto`.
async fn serve(env: &Env, moto: &Moto, extra: &[(&str, &str)]) -> Server {
    let mut vars = vec![("AWS_ENDPOINT_URL", moto.url.as_str())];
    vars.extend(CREDENTIALS);
    vars.extend(extra.iter().copied());
    env.serve_with_env(&[], &vars).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_incident_replayed_on_aws_is_denied_and_the_safe_variant_is_reverted_on_breach() {
    let (moto, env, server) = replay_setup().await;
    let before = status(&moto).await;
    assert_eq!(before["ledger_items"], 1, "{before}");

    // 1. The agent asks to delete the prod stack.
    let (code, denied) = server
        .post("/v1/actions", &env.bot, &aws("delete", STACK, json!({})))
        .await;
    let text = denied.to_string();
    assert_eq!(
        denied["verdict"],
        "deny",
        "{code} {denied}\n{}",
        server.log()
    );
    let reasons: Vec<&str> = denied["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        reasons.contains(&"no-delete-with-live-dependents"),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"no-data-loss-in-prod"), "{reasons:?}");
    // What the stack contains is decided as if targeted: the table loses its data; the
    // fleet and its launch configuration do not.
    assert!(
        reasons.contains(&"no-data-loss-in-prod on aws:table/us-east-1/billing-ledger"),
        "{reasons:?}"
    );
    assert!(
        !reasons
            .iter()
            .any(|r| r.contains("on aws:autoscaling-group")),
        "{reasons:?}"
    );
    for named in [
        "invoices",
        "payouts",
        "billing-ledger",
        "environment `prod`",
    ] {
        assert!(
            text.contains(named),
            "`{named}` not in the denial: {denied}"
        );
    }
    // Nothing happened.
    assert_eq!(status(&moto).await, before);

    // 2. "…and recreate it": the stack exists, so a create is a clear error.
    let (code, refused) = server
        .post(
            "/v1/actions",
            &env.bot,
            &aws("create", STACK, json!({"template": "{}"})),
        )
        .await;
    assert!(code >= 400, "{code} {refused}");
    assert!(refused.to_string().contains("exists"), "{refused}");

    // 3. The safe variant: raise the fleet's ceiling through a change set. The fleet is
    // failing, so only an operator may let a change through; one does.
    let (code, held) = server
        .post(
            "/v1/actions",
            &env.bot,
            &aws("update", STACK, json!({"parameters": {"WebMax": "12"}})),
        )
        .await;
    assert_eq!(code, 202, "{held}\n{}", server.log());
    assert_eq!(held["verdict"], "hold", "{held}");
    assert!(
        held["reasons"]
            .to_string()
            .contains("unhealthy-service-needs-approval"),
        "{held}"
    );
    let action_id = text_of(&held["id"]);
    let approval = text_of(&held["approval_id"]);
    let approved = env
        .operator(
            &server,
            &[
                "approve",
                &approval,
                "--reason",
                "a ceiling change, not a rebuild",
            ],
        )
        .await
        .code(0)
        .json();
    assert_eq!(approved["status"], "baking", "{approved}\n{}", server.log());
    let stack = read_stack(&server, &env.bot).await;
    assert_eq!(stack["parameters"]["WebMax"], "12", "{stack}");

    // 4. The change makes the fleet worse: 40% errors, on CloudWatch. The bake reverts it.
    let pusher = push_errors_forever(&moto, 40.0);
    let done = server
        .wait_for(
            &env.bot,
            &action_id,
            &["reverted", "settled", "unjudged", "needs_attention"],
            200,
        )
        .await;
    pusher.abort();
    assert_eq!(done["status"], "reverted", "{done}\n{}", server.log());
    let stack = read_stack(&server, &env.bot).await;
    assert_eq!(
        stack["parameters"]["WebMax"], "8",
        "reverted to the snapshot: {stack}"
    );

    // 5. The same request, made directly with the SDK: the stack and its ledger are gone
    // (recreated empty).
    replay(&moto, &["direct-delete", "--recreate"]).await;
    let after = status(&moto).await;
    assert_eq!(
        after["ledger_items"], 0,
        "the ledger's data is gone: {after}"
    );
}

fn text_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// The stack as an agent's read shows it.
async fn read_stack(server: &Server, token: &str) -> Value {
    let (status, v) = server
        .post("/v1/actions", token, &aws("read", STACK, json!({})))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "done", "{v}");
    v["result"][0].clone()
}

/// The coding agent's hook, with `AIRLOCK_URL` at the server: its answer to one command.
async fn hook(env: &Env, server: &Server, command: &str) -> (String, String) {
    let event = json!({"session_id": "s-1", "cwd": "/repo", "hook_event_name": "PreToolUse",
        "tool_name": "Bash", "tool_input": {"command": command, "description": "ops"}})
    .to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(["hook", "claude-code", "--config"])
        .arg(&env.config)
        .current_dir(env.dir.path())
        .env_remove("AIRLOCK_CONFIG")
        .env("AIRLOCK_URL", &server.url)
        .env("AIRLOCK_TOKEN", &env.bot)
        .env("AWS_REGION", "us-east-1");
    let out = run_with_stdin(cmd, event).await;
    let answer: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let o = &answer["hookSpecificOutput"];
    (
        text_of(&o["permissionDecision"]),
        text_of(&o["permissionDecisionReason"]),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hook_plans_aws_cli_commands_against_the_real_state() {
    let (moto, env, server) = replay_setup().await;
    let before = status(&moto).await;

    // The classifier alone can only say a delete-stack is critical; planned against the
    // account, it is denied with the stack's real importers and the data it would lose.
    let (got, reason) = hook(
        &env,
        &server,
        "aws cloudformation delete-stack --stack-name billing-prod",
    )
    .await;
    assert_eq!(got, "deny", "{reason}");
    for named in [
        "invoices",
        "payouts",
        "billing-ledger",
        "no-delete-with-live-dependents",
    ] {
        assert!(reason.contains(named), "`{named}` not in: {reason}");
    }

    // Adding capacity to the failing fleet is allowed, and only handed back: the agent's
    // own command does it (Airlock changed nothing).
    let (got, reason) = hook(
        &env,
        &server,
        "aws autoscaling set-desired-capacity --auto-scaling-group-name billing-web --desired-capacity 6",
    )
    .await;
    assert_eq!(got, "allow", "{reason}");
    assert_eq!(status(&moto).await, before);
    let read = server
        .post(
            "/v1/actions",
            &env.bot,
            &json!({"provider": "aws", "verb": "read", "target": "aws:autoscaling-group/us-east-1/billing-web"}),
        )
        .await
        .1;
    assert_eq!(read["result"][0]["desired"], 4, "{read}");

    // A stack the account does not hold cannot be planned: the classifier decides, as
    // without the provider.
    let (got, reason) = hook(
        &env,
        &server,
        "aws cloudformation delete-stack --stack-name ghost",
    )
    .await;
    assert_eq!(got, "ask", "{reason}");
}

/// Pushes the billing fleet's metrics with `pct` errors every 300 ms until aborted.
fn push_errors_forever(moto: &Moto, pct: f64) -> tokio::task::JoinHandle<()> {
    let url = moto.url.clone();
    let script = example("replay.py").display().to_string();
    tokio::spawn(async move {
        loop {
            let args = [script.as_str(), "metrics", "--errors-pct", &pct.to_string()];
            python(&url, args.iter().map(|a| a.to_string()).collect()).await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_autoscaling_cut_bakes_on_cloudwatch_and_is_reverted_on_a_breach() {
    // A healthy fleet: 4 members at 30% CPU, no errors.
    let (moto, env, server) = replay_setup_with(&["setup", "--errors-pct", "0"]).await;
    let group = "aws:autoscaling-group/us-east-1/billing-web";
    let (code, v) = server
        .post(
            "/v1/actions",
            &env.bot,
            &aws("scale", group, json!({"desired": 3})),
        )
        .await;
    assert_eq!(code, 200, "{v}\n{}", server.log());
    assert_eq!(v["verdict"], "allow", "{v}");
    assert_eq!(v["status"], "baking", "{v}");
    assert_eq!(v["plan"]["blast"]["capacity_delta_pct"], -25.0, "{v}");
    let id = text_of(&v["id"]);
    assert_eq!(desired(&server, &env.bot, group).await, 3);
    // The cut breaks the fleet: 40% errors on CloudWatch. The bake puts 4 back.
    let pusher = push_errors_forever(&moto, 40.0);
    let done = server
        .wait_for(
            &env.bot,
            &id,
            &["reverted", "settled", "unjudged", "needs_attention"],
            200,
        )
        .await;
    pusher.abort();
    assert_eq!(done["status"], "reverted", "{done}\n{}", server.log());
    assert_eq!(desired(&server, &env.bot, group).await, 4);
}

/// A group's desired capacity, as an agent's read shows it.
async fn desired(server: &Server, token: &str, group: &str) -> Value {
    let (_, v) = server
        .post("/v1/actions", token, &aws("read", group, json!({})))
        .await;
    v["result"][0]["desired"].clone()
}

/// Each verb under the default pack, against the replay's account plus a role, a table and
/// a group member: what an agent gets for each.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_pack_decides_each_aws_verb_on_its_real_plan() {
    let (moto, env, server) = replay_setup_with(&["setup", "--errors-pct", "0"]).await;
    let script = r#"
import boto3, os
kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
iam = boto3.client("iam", **kw)
iam.create_role(RoleName="deployer", AssumeRolePolicyDocument="{}")
ddb = boto3.client("dynamodb", **kw)
ddb.create_table(TableName="sessions", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    Tags=[{"Key": "env", "Value": "prod"}])
g = boto3.client("autoscaling", **kw).describe_auto_scaling_groups(AutoScalingGroupNames=["billing-web"])
print(g["AutoScalingGroups"][0]["Instances"][0]["InstanceId"])
"#;
    let member = boto3(&moto, script).await.trim().to_string();

    let cases = [
        // (verb, target, params, verdict, a reason that must be among the reasons)
        (
            "delete",
            "aws:table/us-east-1/sessions".to_string(),
            json!({}),
            "deny",
            "no-data-loss-in-prod",
        ),
        (
            "delete",
            "aws:table/us-east-1/sessions".to_string(),
            json!({"backup": true}),
            "hold",
            "prod-destructive-needs-approval",
        ),
        (
            "update",
            "aws:role/global/deployer".to_string(),
            json!({"attach_policy": "arn:aws:iam::aws:policy/AdministratorAccess"}),
            "hold",
            "critical-risk-needs-approval",
        ),
        (
            "delete",
            format!("aws:instance/us-east-1/{member}"),
            json!({}),
            "hold",
            "prod-destructive-needs-approval",
        ),
        (
            "scale",
            "aws:autoscaling-group/us-east-1/billing-web".to_string(),
            // The group carries 4 × 30% CPU: one member at 80% is headroom 0.67.
            json!({"desired": 1, "min": 1}),
            "deny",
            "headroom-floor",
        ),
        (
            "scale",
            "aws:autoscaling-group/us-east-1/billing-web".to_string(),
            json!({"desired": 5}),
            "allow",
            "",
        ),
        (
            "read",
            "aws:stack/us-east-1/billing-prod".to_string(),
            json!({}),
            "allow",
            "",
        ),
    ];
    for (verb, target, params, verdict, reason) in cases {
        let (_, v) = server
            .post("/v1/actions", &env.bot, &aws(verb, &target, params.clone()))
            .await;
        assert_eq!(v["verdict"], verdict, "{verb} {target} {params}: {v}");
        assert!(
            reason.is_empty() || v["reasons"].as_array().unwrap().iter().any(|r| r == reason),
            "{verb} {target}: {v}"
        );
    }
}

/// Someone changes the group by hand while Airlock's cut bakes; when the bake then wants to
/// revert, it finds the group moved on and stops at `needs_attention` instead of overwriting.
#[tokio::test(flavor = "multi_thread")]
async fn a_revert_that_finds_the_group_moved_on_needs_attention() {
    let (moto, env, server) = replay_setup_with(&["setup", "--errors-pct", "0"]).await;
    let group = "aws:autoscaling-group/us-east-1/billing-web";
    let (_, v) = server
        .post(
            "/v1/actions",
            &env.bot,
            &aws("scale", group, json!({"desired": 3})),
        )
        .await;
    assert_eq!(v["status"], "baking", "{v}");
    let id = text_of(&v["id"]);
    let script = "import boto3, os\nboto3.client('autoscaling', endpoint_url=os.environ['AWS_ENDPOINT_URL'], region_name='us-east-1').set_desired_capacity(AutoScalingGroupName='billing-web', DesiredCapacity=5)";
    boto3(&moto, script).await;
    let pusher = push_errors_forever(&moto, 40.0);
    let done = server
        .wait_for(
            &env.bot,
            &id,
            &["reverted", "settled", "unjudged", "needs_attention"],
            200,
        )
        .await;
    pusher.abort();
    assert_eq!(
        done["status"],
        "needs_attention",
        "{done}\n{}",
        server.log()
    );
    assert_eq!(
        desired(&server, &env.bot, group).await,
        5,
        "the hand-made change stands"
    );
}

/// The server dies the instant AWS has applied a change, before its outcome is journaled.
/// On restart the intent is read back from AWS: the change is journaled as applied
/// (`reconciled`), baked, and never applied twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_aws_applied_before_a_crash_is_read_back_after_the_restart() {
    let (moto, env, mut server) = replay_setup_env(
        &["setup", "--errors-pct", "0"],
        &[("AIRLOCK_FAILPOINTS", "gate.after_apply=crash")],
    )
    .await;
    let group = "aws:autoscaling-group/us-east-1/billing-web";
    let sent = reqwest::Client::new()
        .post(format!("{}/v1/actions", server.url))
        .bearer_auth(&env.bot)
        .json(&aws("scale", group, json!({"desired": 3})))
        .send()
        .await;
    assert!(
        sent.is_err(),
        "the server answered instead of crashing: {sent:?}"
    );
    for _ in 0..100 {
        if server.child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        server.log().contains("crashing on purpose"),
        "{}",
        server.log()
    );
    drop(server);

    let server = serve(&env, &moto, &[]).await;
    assert_eq!(
        desired(&server, &env.bot, group).await,
        3,
        "AWS applied it once"
    );
    let mut applied = Vec::new();
    for _ in 0..100 {
        let page = server
            .get("/v1/journal?kind=applied&limit=100", &env.op)
            .await;
        applied = page["items"].as_array().unwrap().clone();
        if !applied.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(applied.len(), 1, "{applied:?}\n{}", server.log());
    assert_eq!(applied[0]["payload"]["reconciled"], true, "{applied:?}");
    env.airlock(&["journal", "verify", "--store", &env.store()])
        .await
        .code(0);
}
