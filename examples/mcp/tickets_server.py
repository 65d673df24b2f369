#!/usr/bin/env python3
"""A small ticket tracker as an MCP server over streamable HTTP, for the gateway example
(examples/config/mcp-gateway.toml): start it first, then `airlock serve` connects to it.

Usage:
    python3 examples/mcp/tickets_server.py [--port 9000]

Serves MCP at http://127.0.0.1:PORT/mcp. Tickets live in memory. Built on the official MCP
Python SDK (`pip install -r examples/mcp/requirements.txt`); logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations


def build() -> MCPServer:
    server = MCPServer("tickets", version="1.0.0", log_level="WARNING")
    tickets: dict[str, dict[str, str]] = {}

    def annotations(title: str, read_only: bool, destructive: bool) -> ToolAnnotations:
        return ToolAnnotations(
            title=title,
            read_only_hint=read_only,
            destructive_hint=destructive,
            idempotent_hint=read_only,
            open_world_hint=False,
        )

    @server.tool(annotations=annotations("List tickets", True, False))
    async def list_tickets() -> list[dict[str, str]]:
        """List every ticket with its id, title and status."""
        return [{"id": k, **v} for k, v in sorted(tickets.items())]

    @server.tool(annotations=annotations("Open a ticket", False, False))
    async def open_ticket(title: str) -> str:
        """Open a ticket; returns its id."""
        ticket_id = f"T-{len(tickets) + 1}"
        tickets[ticket_id] = {"title": title, "status": "open"}
        return ticket_id

    @server.tool(annotations=annotations("Close a ticket", False, False))
    async def close_ticket(id: str) -> str:
        """Close the ticket `id`."""
        if id not in tickets:
            raise ToolError(f"no ticket {id}")
        tickets[id]["status"] = "closed"
        return f"closed {id}"

    @server.tool(annotations=annotations("Purge every ticket", False, True))
    async def purge_all() -> str:
        """Delete every ticket (the gateway example hides this tool from agents)."""
        n = len(tickets)
        tickets.clear()
        return f"purged {n} tickets"

    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    build().run("streamable-http", host="127.0.0.1", port=args.port, streamable_http_path="/mcp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
