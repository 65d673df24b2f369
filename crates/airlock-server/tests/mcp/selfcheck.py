#!/usr/bin/env python3
"""Checks mcp_client.py and upstream_server.py against each other, without Airlock.

Usage: python3 selfcheck.py

Runs the client against the upstream server over stdio and over streamable HTTP
(the HTTP server is started on a free loopback port and stopped by its PID), and
prints one line per check followed by "N passed, N failed". Exits 0 only if every
check passed.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "mcp_client.py")
SERVER = os.path.join(HERE, "upstream_server.py")
PY = sys.executable

EXPECTED_ANNOTATIONS = {
    "list_notes": {"readOnlyHint": True},
    "get_note": {"readOnlyHint": True},
    "create_note": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False},
    "delete_note": {"destructiveHint": True, "idempotentHint": True},
    "set_secret": {"destructiveHint": False},
    "crash": {"destructiveHint": False},
    "echo": {"readOnlyHint": True},
}

passed = 0
failed = 0


def check(name: str, ok: bool, detail: Any = "") -> None:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def run_client(target: list[str], ops: list[dict[str, Any]], timeout: float = 60) -> tuple[int, Any, str, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [PY, CLIENT, *target],
        input=json.dumps(ops),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    elapsed = time.monotonic() - start
    out: Any = None
    if proc.stdout.strip():
        try:
            out = json.loads(proc.stdout)
        except json.JSONDecodeError:
            out = proc.stdout
    return proc.returncode, out, proc.stderr, elapsed


def read_state(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def basic_script() -> list[dict[str, Any]]:
    return [
        {"op": "list_tools"},
        {"op": "call", "name": "create_note", "arguments": {"name": "n1", "text": "hello"}},
        {"op": "call", "name": "get_note", "arguments": {"name": "n1"}},
        {"op": "call", "name": "create_note", "arguments": {"name": "n1", "text": "again"}},
        {"op": "call", "name": "create_note", "arguments": {"name": "n2", "text": "kept"}},
        {"op": "call", "name": "list_notes", "arguments": {}},
        {"op": "call", "name": "delete_note", "arguments": {"name": "n1"}},
        {"op": "call", "name": "delete_note", "arguments": {"name": "n1"}},
        {"op": "call", "name": "set_secret", "arguments": {"name": "k", "api_key": "sk-123"}},
        {"op": "call", "name": "no_such_tool", "arguments": {}},
        {"op": "raw", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "raw"}}},
        {"op": "raw", "method": "no/such/method", "params": {}},
        {"op": "call", "name": "echo", "arguments": {"text": "still alive"}},
    ]


def check_basic(label: str, rc: int, out: Any, stderr: str, state_path: str) -> None:
    check(f"{label}: exit 0", rc == 0, (rc, stderr[-500:]))
    if not isinstance(out, list) or len(out) != 13:
        check(f"{label}: 13 results", False, out)
        return
    tools = {t["name"]: t for t in out[0].get("tools", [])}
    check(f"{label}: list_tools shows the 7 tools", set(tools) == set(EXPECTED_ANNOTATIONS), sorted(tools))
    for name, want in EXPECTED_ANNOTATIONS.items():
        got = (tools.get(name) or {}).get("annotations") or {}
        ok = all(got.get(k) == v for k, v in want.items())
        check(f"{label}: {name} annotations {want}", ok, got)
    schema = (tools.get("create_note") or {}).get("inputSchema") or {}
    check(
        f"{label}: create_note inputSchema",
        schema.get("type") == "object" and set(schema.get("required", [])) == {"name", "text"},
        schema,
    )
    check(f"{label}: create", out[1].get("isError") is False and out[1].get("text") == "created n1", out[1])
    check(f"{label}: get", out[2].get("isError") is False and out[2].get("text") == "hello", out[2])
    check(f"{label}: create existing is a tool error", out[3].get("isError") is True, out[3])
    check(f"{label}: list_notes", out[5].get("structured") == {"result": ["n1", "n2"]}, out[5])
    check(f"{label}: delete", out[6].get("isError") is False and out[6].get("text") == "deleted n1", out[6])
    check(f"{label}: delete missing is a tool error", out[7].get("isError") is True, out[7])
    check(f"{label}: set_secret", out[8].get("text") == "stored", out[8])
    check(f"{label}: missing tool gives an error result", out[9].get("isError") is True or "error" in out[9], out[9])
    raw = (out[10].get("result") or {}) if isinstance(out[10], dict) else {}
    check(
        f"{label}: raw tools/call",
        raw.get("isError") is False and raw.get("content", [{}])[0].get("text") == "raw",
        out[10],
    )
    check(f"{label}: raw unknown method is a JSON-RPC error", (out[11].get("error") or {}).get("code") == -32601, out[11])
    check(f"{label}: session goes on after errors", out[12].get("text") == "still alive", out[12])
    state = read_state(state_path)
    check(f"{label}: state file holds what was applied", state == {"n2": "kept", "k": "secret"}, state)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="airlock-mcp-selfcheck-") as tmp:
        # --- stdio ---
        state = os.path.join(tmp, "stdio.json")
        server_cmd = f"{shlex.quote(PY)} {shlex.quote(SERVER)} --state {shlex.quote(state)}"
        rc, out, err, _ = run_client(["--stdio", server_cmd], basic_script())
        check_basic("stdio", rc, out, err, state)

        # --env reaches the spawned server
        env_cmd = (
            "sh -c 'test \"$AIRLOCK_SELFCHECK\" = yes || exit 9; exec \"$0\" \"$@\"' "
            + server_cmd
        )
        rc, out, err, _ = run_client(["--stdio", env_cmd, "--env", "AIRLOCK_SELFCHECK=yes"], [{"op": "ping"}])
        check("stdio: --env is passed to the server", rc == 0 and out == [{"result": {}}], (rc, out, err[-300:]))

        # crash mid-call: an error, later ops report session closed, no hang
        state = os.path.join(tmp, "crash.json")
        crash_cmd = f"{shlex.quote(PY)} {shlex.quote(SERVER)} --state {shlex.quote(state)}"
        ops = [
            {"op": "call", "name": "echo", "arguments": {"text": "before"}},
            {"op": "call", "name": "crash", "arguments": {}},
            {"op": "call", "name": "echo", "arguments": {"text": "after"}},
            {"op": "list_tools"},
        ]
        rc, out, err, elapsed = run_client(["--stdio", crash_cmd], ops)
        check("stdio crash: exit 0", rc == 0, (rc, err[-300:]))
        ok = isinstance(out, list) and len(out) == 4
        check("stdio crash: 4 results", ok, out)
        if ok:
            check("stdio crash: call before works", out[0].get("text") == "before", out[0])
            check("stdio crash: crash gives an error", "error" in out[1], out[1])
            check(
                "stdio crash: later ops report session closed",
                all((r.get("error") or {}).get("message", "").startswith("session closed") for r in out[2:]),
                out[2:],
            )
        check("stdio crash: no hang (< 10 s)", elapsed < 10, f"{elapsed:.1f} s")

        # cannot start the server at all: exit 2, message on stderr, nothing on stdout
        rc, out, err, _ = run_client(["--stdio", f"{shlex.quote(PY)} -c 'raise SystemExit(1)'"], [{"op": "ping"}])
        check("stdio dead server: exit 2 with stderr only", rc == 2 and out is None and err.strip() != "", (rc, out))

        # --- streamable HTTP ---
        for json_response in (False, True):
            label = "http-json" if json_response else "http-sse"
            state = os.path.join(tmp, f"{label}.json")
            port = free_port()
            cmd = [PY, SERVER, "--state", state, "--transport", "http", "--port", str(port)]
            if json_response:
                cmd.append("--json-response")
            server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                up = wait_port(port, server)
                check(f"{label}: server listens", up)
                if not up:
                    continue
                url = f"http://127.0.0.1:{port}/mcp"
                rc, out, err, _ = run_client(["--url", url, "--header", "Authorization: Bearer t0ken"], basic_script())
                check_basic(label, rc, out, err, state)

                ops = [
                    {"op": "call", "name": "crash", "arguments": {}},
                    {"op": "call", "name": "echo", "arguments": {"text": "after"}},
                ]
                rc, out, err, elapsed = run_client(["--url", url, "--timeout", "5"], ops)
                ok = rc == 0 and isinstance(out, list) and len(out) == 2
                check(f"{label} crash: exit 0 with 2 results", ok, (rc, out, err[-300:]))
                if ok:
                    check(f"{label} crash: crash gives an error", "error" in out[0], out[0])
                    check(f"{label} crash: next op gives an error", "error" in out[1], out[1])
                check(f"{label} crash: no hang (< 15 s)", elapsed < 15, f"{elapsed:.1f} s")
                server.wait(timeout=10)
                check(f"{label} crash: server exited with status 3", server.returncode == 3, server.returncode)
            finally:
                stop(server)

        # nothing listening: exit 2
        rc, out, err, _ = run_client(["--url", f"http://127.0.0.1:{free_port()}/mcp"], [{"op": "ping"}])
        check("http nothing listening: exit 2", rc == 2 and out is None, (rc, out, err[-300:]))

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
