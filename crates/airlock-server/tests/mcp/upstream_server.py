#!/usr/bin/env python3
"""Upstream MCP server used by Airlock's integration tests (the server Airlock proxies).

Usage:
    python3 upstream_server.py --state PATH [--transport stdio|http] [--port N] [--json-response]

State is a JSON object of notes {name: text} kept in the file PATH. It is read at
every call and rewritten atomically (temp file + rename) after every change, so a
test can check from outside which calls were really applied.

Built on the official MCP Python SDK, pinned in requirements.txt (mcp 2.x:
`mcp.server.mcpserver.MCPServer`, the successor of 1.x's FastMCP).

In stdio mode stdout carries the protocol: nothing else is printed there. Logs go
to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

SERVER_NAME = "airlock-test-upstream"
SERVER_VERSION = "1.0.0"

# Exit status of the process when the `crash` tool is called.
CRASH_EXIT_CODE = 3


class NoteStore:
    """Notes kept in a JSON file; every mutation is an atomic rewrite under an flock."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.lock_path = self.path + ".lock"
        if not os.path.exists(self.path):
            with self.locked():
                if not os.path.exists(self.path):
                    self._write({})

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        # A lock file next to the state file serialises writers across processes
        # (several upstream processes may share one state file).
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def read(self) -> dict[str, str]:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise ToolError(f"state file {self.path} does not hold a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def _write(self, notes: dict[str, str]) -> None:
        directory = os.path.dirname(self.path) or "."
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(notes, f, indent=2, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def mutate(self, change: Any) -> Any:
        """Run change(notes) under the lock on a fresh read, then persist the notes."""
        with self.locked():
            notes = self.read()
            result = change(notes)
            self._write(notes)
            return result


def build_server(store: NoteStore) -> MCPServer:
    server = MCPServer(
        SERVER_NAME,
        version=SERVER_VERSION,
        instructions="Notes service used as an upstream in Airlock's tests.",
        log_level="WARNING",
    )

    @server.tool(
        annotations=ToolAnnotations(
            title="List notes",
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def list_notes() -> list[str]:
        """List the names of all notes, sorted."""
        return sorted(store.read())

    @server.tool(
        annotations=ToolAnnotations(
            title="Get a note",
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def get_note(name: str) -> str:
        """Return the text of the note called `name`."""
        notes = store.read()
        if name not in notes:
            raise ToolError(f"note not found: {name}")
        return notes[name]

    @server.tool(
        annotations=ToolAnnotations(
            title="Create a note",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
    async def create_note(name: str, text: str) -> str:
        """Create a new note; fails if a note with that name exists."""

        def change(notes: dict[str, str]) -> None:
            if name in notes:
                raise ToolError(f"note already exists: {name}")
            notes[name] = text

        store.mutate(change)
        return f"created {name}"

    @server.tool(
        annotations=ToolAnnotations(
            title="Delete a note",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def delete_note(name: str) -> str:
        """Delete the note called `name`; fails if it does not exist."""

        def change(notes: dict[str, str]) -> None:
            if name not in notes:
                raise ToolError(f"note not found: {name}")
            del notes[name]

        store.mutate(change)
        return f"deleted {name}"

    @server.tool(
        annotations=ToolAnnotations(
            title="Store a secret",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def set_secret(name: str, api_key: str) -> str:
        """Store a credential under `name` (the note text is the word "secret", never the key)."""

        def change(notes: dict[str, str]) -> None:
            notes[name] = "secret"

        store.mutate(change)
        return "stored"

    @server.tool(
        annotations=ToolAnnotations(
            title="Crash the server",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
    async def crash() -> str:
        """Terminate the server process immediately, mid-call, without answering."""
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)

    @server.tool(
        annotations=ToolAnnotations(
            title="Echo",
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def echo(text: str) -> str:
        """Return `text` unchanged."""
        return text

    return server


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, help="JSON file holding the notes")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="http only (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="http only (default 8765)")
    parser.add_argument(
        "--json-response",
        action="store_true",
        help="http only: answer POSTs with application/json instead of an SSE stream",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    store = NoteStore(args.state)
    server = build_server(store)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run(
            "streamable-http",
            host=args.host,
            port=args.port,
            streamable_http_path="/mcp",
            json_response=args.json_response,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
