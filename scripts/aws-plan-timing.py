#!/usr/bin/env python3
"""How long one plan of the `aws` provider takes against moto, through a running
`airlock serve` (request → plan → assess → decide → journal → answer), next to the raw moto
calls the plan makes, measured in the same run.

  python3 scripts/aws-plan-timing.py --airlock target/release/airlock [--runs 30]

Starts moto_server and `airlock serve` on free loopback ports in a temporary directory, sets
up the replay's account (examples/aws/replay.py setup), and times requests that are planned
and decided but never applied (denied), so every run plans the same state. Prints medians.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url, token=None):
    for _ in range(300):
        try:
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
            urllib.request.urlopen(req, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"{url} did not answer")


def post(url, token, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def timed(n, f):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out), max(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--airlock", required=True)
    p.add_argument("--runs", type=int, default=30)
    a = p.parse_args()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    procs = []
    with tempfile.TemporaryDirectory() as d:
        try:
            mport = free_port()
            procs.append(subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(mport)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            moto = f"http://127.0.0.1:{mport}"
            wait(f"{moto}/moto-api/data.json")
            env["AWS_ENDPOINT_URL"] = moto
            subprocess.run([sys.executable, os.path.join(ROOT, "examples/aws/replay.py"), "setup", "--errors-pct", "0"], env=env, check=True, stdout=subprocess.DEVNULL)
            cfg = open(os.path.join(ROOT, "examples/aws/airlock.toml")).read()
            # Timing, not policing: no rate limit or quarantine cuts the runs short.
            cfg = f"[store]\nurl = '{d}/airlock.db'\n\n[guards]\nmutations_per_minute = 100000\n\n[anomaly]\nenabled = false\n\n" + cfg
            open(f"{d}/airlock.toml", "w").write(cfg)
            tok = lambda *args: subprocess.run([a.airlock, "token", "create", *args, "--store", f"{d}/airlock.db"], capture_output=True, text=True, check=True).stdout.strip()
            bot = tok("--agent", "bot")
            port = free_port()
            procs.append(subprocess.Popen([a.airlock, "serve", "--config", f"{d}/airlock.toml", "--listen", f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            url = f"http://127.0.0.1:{port}"
            wait(f"{url}/healthz")
            act = lambda verb, target, params=None: post(f"{url}/v1/actions", bot, {"provider": "aws", "verb": verb, "target": target, "params": params or {}})
            first = act("delete", "aws:stack/us-east-1/billing-prod")
            assert first["verdict"] == "deny", first
            kw = dict(endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
            asg = boto3.client("autoscaling", **kw)
            cfn = boto3.client("cloudformation", **kw)
            rows = [
                ("moto: DescribeAutoScalingGroups (raw)", lambda: asg.describe_auto_scaling_groups(AutoScalingGroupNames=["billing-web"])),
                ("moto: DescribeStacks (raw)", lambda: cfn.describe_stacks(StackName="billing-prod")),
                ("airlock: read a group", lambda: act("read", "aws:autoscaling-group/us-east-1/billing-web")),
                ("airlock: scale a group (planned, denied)", lambda: act("scale", "aws:autoscaling-group/us-east-1/billing-web", {"desired": 1, "min": 1})),
                ("airlock: delete a stack (planned, denied)", lambda: act("delete", "aws:stack/us-east-1/billing-prod")),
            ]
            for name, f in rows:
                med, worst = timed(a.runs, f)
                print(f"{name:45s} median {med:7.1f} ms   max {worst:7.1f} ms   ({a.runs} runs)")
        finally:
            for pr in procs:
                pr.kill()
                pr.wait()


if __name__ == "__main__":
    main()
