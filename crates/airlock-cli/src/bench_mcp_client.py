#!/usr/bin/env python3
"""`airlock bench mcp --client python`: time tools/call with the official MCP Python SDK.

Opens two streamable-HTTP sessions, one straight to the upstream and one through the gate,
and calls a tool on each in turn (interleaved, so both paths see the same machine load).
Reads one JSON object on stdin:

    {"direct": URL, "proxied": URL, "token": BEARER, "calls": N, "warmup": N,
     "plans": [{"label": L, "direct": TOOL, "proxied": TOOL, "arguments": {...},
                "unique": FIELD | null}]}

`unique` names an argument made distinct per call (`<value>-<path>-<i>`), for tools that
refuse a repeat (creating a note that exists). Prints one JSON object on stdout:
{"results": [{"label": L, "direct_ms": [...], "proxied_ms": [...]}]}. Exits 1, with why on
stderr, when any call fails or is refused.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def open_session(stack: AsyncExitStack, url: str, headers: dict[str, str]) -> ClientSession:
    client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
    await stack.enter_async_context(client)
    read, write = await stack.enter_async_context(streamable_http_client(url, http_client=client))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


def arguments_for(plan: dict[str, Any], path: str, i: int) -> dict[str, Any]:
    args = dict(plan["arguments"])
    field = plan.get("unique")
    if field:
        args[field] = f"{args.get(field, 'x')}-{path}-{i}"
    return args


async def timed(session: ClientSession, tool: str, args: dict[str, Any], what: str) -> float:
    start = time.perf_counter_ns()
    result = await session.call_tool(tool, args)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise RuntimeError(f"{what} call of `{tool}` failed: {text}")
    return elapsed


async def main() -> int:
    spec = json.load(sys.stdin)
    out = []
    async with AsyncExitStack() as stack:
        direct = await open_session(stack, spec["direct"], {})
        proxied = await open_session(stack, spec["proxied"], {"Authorization": f"Bearer {spec['token']}"})
        for plan in spec["plans"]:
            d_ms: list[float] = []
            p_ms: list[float] = []
            for i in range(spec["warmup"] + spec["calls"]):
                d = await timed(direct, plan["direct"], arguments_for(plan, "d", i), "direct")
                p = await timed(proxied, plan["proxied"], arguments_for(plan, "p", i), "proxied")
                if i >= spec["warmup"]:
                    d_ms.append(d)
                    p_ms.append(p)
            out.append({"label": plan["label"], "direct_ms": d_ms, "proxied_ms": p_ms})
    json.dump({"results": out}, sys.stdout)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(anyio.run(main))
    except Exception as exc:  # noqa: BLE001 - any failure invalidates the run
        print("bench client: the run failed", file=sys.stderr)
        traceback.print_exception(exc, file=sys.stderr)
        sys.exit(1)
