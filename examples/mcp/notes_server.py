#!/usr/bin/env python3
"""A small notes service as an MCP server, for the gateway example
(examples/config/mcp-gateway.toml): Airlock starts it over stdio and gates its tools.

Usage:
    python3 examples/mcp/notes_server.py --state PATH [--transport stdio|http] [--port N]

Notes are a JSON object {name: text} in the file PATH, rewritten atomically after every
change. Built on the official MCP Python SDK (`pip install -r examples/mcp/requirements.txt`).
In stdio mode stdout carries the protocol; logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations


def load(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            return {str(k): str(v) for k, v in json.load(f).items()}
    except FileNotFoundError:
        return {}


def save(path: str, notes: dict[str, str]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".notes-", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(notes, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def build(path: str) -> MCPServer:
    server = MCPServer("notes", version="1.0.0", log_level="WARNING")

    def annotations(title: str, read_only: bool, destructive: bool) -> ToolAnnotations:
        return ToolAnnotations(
            title=title,
            read_only_hint=read_only,
            destructive_hint=destructive,
            idempotent_hint=read_only or destructive,
            open_world_hint=False,
        )

    @server.tool(annotations=annotations("List notes", True, False))
    async def list_notes() -> list[str]:
        """List the names of all notes, sorted."""
        return sorted(load(path))

    @server.tool(annotations=annotations("Get a note", True, False))
    async def get_note(name: str) -> str:
        """Return the text of the note called `name`."""
        notes = load(path)
        if name not in notes:
            raise ToolError(f"note not found: {name}")
        return notes[name]

    @server.tool(annotations=annotations("Create a note", False, False))
    async def create_note(name: str, text: str) -> str:
        """Create a note; fails if one with that name exists."""
        notes = load(path)
        if name in notes:
            raise ToolError(f"note already exists: {name}")
        notes[name] = text
        save(path, notes)
        return f"created {name}"

    @server.tool(annotations=annotations("Delete a note", False, True))
    async def delete_note(name: str) -> str:
        """Delete the note called `name`; fails if it does not exist."""
        notes = load(path)
        if name not in notes:
            raise ToolError(f"note not found: {name}")
        del notes[name]
        save(path, notes)
        return f"deleted {name}"

    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, help="JSON file holding the notes")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--port", type=int, default=9001, help="http only")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    server = build(args.state)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.port, streamable_http_path="/mcp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
