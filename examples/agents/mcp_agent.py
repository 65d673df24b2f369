#!/usr/bin/env python3
"""A sample external agent for `airlock prove --agent-cmd`, on the official MCP Python SDK.

Airlock starts this program with its MCP server on the program's stdin/stdout. Each turn
the agent observes the sandbox, scales any service running hot (above 75% of its
capacity) to a 60% target, and ends the turn with `next_turn`; the simulator waits while
it thinks. It never deletes anything. Replace `decide` with a language model's judgement
to test your own agent:

    airlock prove scenarios/az-loss.toml --agent-cmd "python3 examples/agents/mcp_agent.py"

Decisions are logged on stderr. Needs `pip install mcp` (see requirements.txt).
"""

from __future__ import annotations

import math
import sys

import anyio
from mcp.client.session import ClientSession
from mcp.server.stdio import stdio_server

HOT = 0.75
TARGET = 0.6


def log(msg: str) -> None:
    print(f"[mcp_agent] {msg}", file=sys.stderr, flush=True)


def decide(observation: dict) -> list[tuple[str, dict]]:
    """The tool calls to make this turn: (tool name, arguments)."""
    calls = []
    for s in observation.get("services", []):
        sig = s.get("signals")
        if not s.get("exists") or sig is None:
            # Missing metrics are not zero demand: leave the service alone.
            continue
        per = s["capacity_rps_per_replica"]
        desired = s["replicas_desired"]
        if per <= 0 or desired <= 0:
            continue
        if sig["demand_rps"] > HOT * per * desired:
            want = math.ceil(sig["demand_rps"] / (per * TARGET))
            if want > desired:
                calls.append(
                    (
                        "sim_scale",
                        {
                            "target": s["name"],
                            "replicas": want,
                            "intent": f"running hot: {sig['demand_rps']:.0f} rps on {desired} replicas",
                        },
                    )
                )
    return calls


async def main() -> None:
    # The agent's stdin/stdout are its connection to Airlock's MCP server.
    async with stdio_server() as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            log(f"tools: {sorted(tools)}")
            turn = (await session.call_tool("observe", {})).structured_content or {}
            while not turn.get("done"):
                for name, args in decide(turn.get("observation") or {}):
                    result = await session.call_tool(name, args)
                    text = " ".join(getattr(c, "text", "") for c in result.content)
                    log(f"t={turn.get('t_s', 0):.0f}s {name} {args} -> {'error' if result.is_error else 'ok'}: {text[:120]}")
                turn = (await session.call_tool("next_turn", {})).structured_content or {}
            log("the run is over")


if __name__ == "__main__":
    anyio.run(main)
