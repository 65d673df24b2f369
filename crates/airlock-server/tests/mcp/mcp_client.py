#!/usr/bin/env python3
"""Scripted MCP client used by Airlock's integration tests.

Usage:
    python3 mcp_client.py (--stdio "CMD ARG..." | --url URL)
                          [--header "Name: value"]... [--env K=V]...
                          [--timeout SECONDS] [--connect-timeout SECONDS]

Reads a JSON array of operations on stdin, runs them in order in ONE MCP session
(initialize handshake first), prints ONE JSON array of results on stdout (one
result per operation, same order) and exits 0. Exits 2, with a message on stderr
and nothing on stdout, only when it cannot connect or initialize at all; exits 1
on bad command-line arguments or unreadable input.

Operations and their results:
    {"op": "list_tools"}
        -> {"tools": [{"name", "title", "description", "inputSchema", "outputSchema",
                       "annotations": {"readOnlyHint", "destructiveHint",
                                       "idempotentHint", "openWorldHint", "title"} | null}]}
    {"op": "call", "name": N, "arguments": {...}}
        -> {"isError": bool, "text": "text blocks joined with \\n",
            "structured": structuredContent | null, "content": [raw content blocks]}
    {"op": "raw", "method": M, "params": {...}}
        -> {"result": <the JSON-RPC result object as received>}
    {"op": "ping"}
        -> {"result": {}}
    {"op": "server_info"}
        -> {"protocolVersion", "serverInfo", "capabilities", "instructions"}

When the server answers with a JSON-RPC error (or the request times out, or the
connection drops), the result is {"error": {"code": int | null, "message": str}}
plus "data" when the error carried some and "httpStatus" when an HTTP response
with status >= 400 was seen for it; the session goes on with the next operation.
Once the connection is closed, every later operation gets
{"error": {"code": null, "message": "session closed: ..."}}.

Built on the official MCP Python SDK, pinned in requirements.txt (mcp 2.x).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
import mcp.types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter, ValidationError

CLIENT_INFO = types.Implementation(name="airlock-test-client", version="1.0.0")
REQUEST_TIMEOUT = -32001
MAX_LIST_PAGES = 100

_RAW_RESULT = TypeAdapter(dict[str, Any])


class BadOperation(Exception):
    """The script's operation itself is malformed (nothing was sent)."""


class HttpStatusTracker:
    """Remembers the last HTTP error status seen, to attach to error results."""

    def __init__(self) -> None:
        self.last_error_status: int | None = None

    async def on_response(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            self.last_error_status = response.status_code

    def take(self) -> int | None:
        status, self.last_error_status = self.last_error_status, None
        return status


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a JSON script of MCP operations in one session.")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stdio", metavar="CMD", help="server command line, split with shlex")
    target.add_argument("--url", help="streamable HTTP endpoint, e.g. http://127.0.0.1:8080/mcp")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'Name: value'",
        help="HTTP header sent with every request (--url only); repeatable",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="variable added to the spawned server's environment (--stdio only); repeatable",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="per-operation timeout in seconds (default 10)")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=20.0,
        help="timeout for the initialize handshake in seconds (default 20)",
    )
    args = parser.parse_args(argv)

    headers: dict[str, str] = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            parser.error(f"--header must look like 'Name: value', got {item!r}")
        headers[name.strip()] = value.strip()
    args.headers = headers

    env: dict[str, str] = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--env must look like K=V, got {item!r}")
        env[key] = value
    args.env_vars = env

    if args.stdio is not None:
        args.command = shlex.split(args.stdio)
        if not args.command:
            parser.error("--stdio needs a command")
    if args.headers and args.url is None:
        parser.error("--header only applies to --url")
    if args.env_vars and args.stdio is None:
        parser.error("--env only applies to --stdio")
    return args


def error_result(code: int | None, message: str, data: Any = None, http_status: int | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    if http_status is not None:
        err["httpStatus"] = http_status
    return {"error": err}


def dump(model: Any) -> Any:
    if model is None:
        return None
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def tool_entry(tool: types.Tool) -> dict[str, Any]:
    return {
        "name": tool.name,
        "title": tool.title,
        "description": tool.description,
        "inputSchema": tool.input_schema,
        "outputSchema": tool.output_schema,
        "annotations": dump(tool.annotations),
    }


def call_result(result: types.CallToolResult) -> dict[str, Any]:
    texts = [block.text for block in result.content if isinstance(block, types.TextContent)]
    return {
        "isError": bool(result.is_error),
        "text": "\n".join(texts),
        "structured": result.structured_content,
        "content": [dump(block) for block in result.content],
    }


def need(op: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in op:
        raise BadOperation(f"op {op.get('op')!r} needs {key!r}")
    value = op[key]
    if not isinstance(value, kind):
        raise BadOperation(f"op {op.get('op')!r}: {key!r} has the wrong type")
    return value


async def run_op(session: ClientSession, op: dict[str, Any], timeout: float) -> dict[str, Any]:
    kind = op.get("op")
    if kind == "list_tools":
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor is not None else None
            page = await session.list_tools(params=params)
            tools.extend(tool_entry(t) for t in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return {"tools": tools}

    if kind == "call":
        name = need(op, "name", str)
        arguments = op.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise BadOperation("op 'call': 'arguments' must be an object")
        # send_request rather than ClientSession.call_tool: call_tool may send an extra
        # tools/list of its own (to validate structuredContent against outputSchema),
        # which would add traffic the tests do not expect and can turn a bad result
        # into a client-side exception.
        result = await session.send_request(
            types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=arguments)),
            types.CallToolResult,
            request_read_timeout_seconds=timeout,
        )
        return call_result(result)

    if kind == "raw":
        method = need(op, "method", str)
        params = op.get("params")
        if params is not None and not isinstance(params, dict):
            raise BadOperation("op 'raw': 'params' must be an object")
        request = types.Request[dict[str, Any] | None, str](method=method, params=params)
        raw = await session.send_request(request, _RAW_RESULT, request_read_timeout_seconds=timeout)
        return {"result": raw}

    if kind == "ping":
        await session.send_ping()
        return {"result": {}}

    if kind == "server_info":
        init = session.initialize_result
        return {
            "protocolVersion": session.protocol_version,
            "serverInfo": dump(session.server_info),
            "capabilities": dump(session.server_capabilities),
            "instructions": init.instructions if init is not None else None,
        }

    raise BadOperation(f"unknown op: {kind!r}")


def connection_closed(session: ClientSession) -> bool:
    """Whether the session's connection is gone for good (stdio EOF, dispatcher shut down).

    Decided from the session's dispatcher, not from the error code: -32000 is also an
    ordinary server-defined code that a gateway may answer with on a live session.
    """
    closed = getattr(getattr(session, "_dispatcher", None), "_closed", None)
    return bool(closed)


async def run_ops(
    session: ClientSession,
    ops: list[Any],
    timeout: float,
    tracker: HttpStatusTracker | None,
    results: list[dict[str, Any]],
) -> None:
    """Run `ops` in order, appending one result per op to `results` as it completes."""
    closed_reason: str | None = None
    for op in ops:
        if closed_reason is not None:
            results.append(error_result(None, f"session closed: {closed_reason}"))
            continue
        if not isinstance(op, dict):
            results.append(error_result(None, "operation must be a JSON object"))
            continue
        if tracker is not None:
            tracker.take()
        try:
            # The SDK's own read timeout fires first; this is the backstop so a
            # stuck write or transport can never hang the client.
            with anyio.fail_after(timeout + 5):
                results.append(await run_op(session, op, timeout))
        except BadOperation as exc:
            results.append(error_result(None, f"bad operation: {exc}"))
        except TimeoutError:
            results.append(error_result(REQUEST_TIMEOUT, f"timed out after {timeout + 5:g} s"))
        except MCPError as exc:
            status = tracker.take() if tracker is not None else None
            results.append(error_result(exc.code, exc.message, exc.data, status))
            if connection_closed(session):
                closed_reason = f"{exc.message} (code {exc.code})"
        except Exception as exc:  # a malformed answer, a transport failure, ...
            status = tracker.take() if tracker is not None else None
            message = describe(exc)
            if isinstance(exc, ValidationError):
                message = f"invalid response: {exc}"
            results.append(error_result(None, message, http_status=status))
            if connection_closed(session) or isinstance(
                exc, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream
            ):
                closed_reason = message


class ConnectFailed(Exception):
    pass


async def run_session(args: argparse.Namespace, ops: list[Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    initialized = False
    tracker: HttpStatusTracker | None = None
    # Whole-run deadline, outermost so scopes stay properly nested: even a transport
    # that refuses to shut down cannot keep the process alive.
    deadline = args.connect_timeout + len(ops) * (args.timeout + 6) + 30
    try:
        with anyio.fail_after(deadline):
            async with AsyncExitStack() as stack:
                if args.url is not None:
                    tracker = HttpStatusTracker()
                    # Same timeouts as the SDK's default client (30 s, 300 s read for
                    # streams); the per-operation timeout is enforced by the session.
                    http_client = httpx2.AsyncClient(
                        headers=args.headers,
                        timeout=httpx2.Timeout(30.0, read=300.0),
                        event_hooks={"response": [tracker.on_response]},
                    )
                    await stack.enter_async_context(http_client)
                    read, write = await stack.enter_async_context(
                        streamable_http_client(args.url, http_client=http_client)
                    )
                else:
                    params = StdioServerParameters(
                        command=args.command[0],
                        args=args.command[1:],
                        env={**os.environ, **args.env_vars},
                    )
                    read, write = await stack.enter_async_context(stdio_client(params, errlog=sys.stderr))
                session = await stack.enter_async_context(
                    ClientSession(read, write, read_timeout_seconds=args.timeout, client_info=CLIENT_INFO)
                )
                try:
                    with anyio.fail_after(args.connect_timeout):
                        await session.initialize()
                except Exception as exc:
                    status = tracker.take() if tracker is not None else None
                    detail = f" (HTTP {status})" if status is not None else ""
                    if isinstance(exc, MCPError):
                        raise ConnectFailed(f"initialize failed: code {exc.code}: {exc.message}{detail}") from exc
                    raise ConnectFailed(f"initialize failed: {type(exc).__name__}: {exc}{detail}") from exc
                initialized = True
                await run_ops(session, ops, args.timeout, tracker, results)
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if not initialized:
            failed = find_connect_failed(exc)
            if failed is not None:
                raise failed from None
            raise ConnectFailed(f"could not connect: {describe(exc)}") from exc
        if len(results) < len(ops):
            # The transport itself failed mid-script (e.g. an HTTP POST could not
            # connect): the op in flight and all later ones get "session closed".
            reason = describe(exc)
            print(f"mcp_client: connection lost: {reason}", file=sys.stderr)
            results.extend(error_result(None, f"session closed: {reason}") for _ in ops[len(results) :])
        else:
            # Errors while tearing the session down do not void the results.
            print(f"mcp_client: error during shutdown (ignored): {describe(exc)}", file=sys.stderr)
    return results


def find_connect_failed(exc: BaseException) -> ConnectFailed | None:
    if isinstance(exc, ConnectFailed):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_connect_failed(inner)
            if found is not None:
                return found
    return None


def describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    # stdout is reserved for the one JSON array; everything else goes to stderr.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    args = parse_args(argv)
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        print("mcp_client: --timeout must be positive", file=sys.stderr)
        return 1
    try:
        ops = json.load(sys.stdin)
    except json.JSONDecodeError as exc:
        print(f"mcp_client: stdin is not JSON: {exc}", file=sys.stderr)
        return 1
    if not isinstance(ops, list):
        print("mcp_client: stdin must hold a JSON array of operations", file=sys.stderr)
        return 1
    try:
        results = anyio.run(run_session, args, ops)
    except ConnectFailed as exc:
        print(f"mcp_client: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(results) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
