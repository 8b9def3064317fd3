"""A tiny stdio MCP server (handshake era, stdlib only) with the faults tests ask for: it exits leaving a process
that holds its stdout, answers with a line longer than the sidecar takes, or never finishes starting.

Environment: PID_FILE (where grandchild pids go), HANG_ON (a method it never answers), STDERR_NOTE (printed to
stderr at start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

TOOLS = [{"name": name, "inputSchema": {"type": "object"}} for name in ("add", "slow", "exit_now", "big")]
_write_lock = threading.Lock()


def send_line(data: bytes) -> None:
    with _write_lock:
        sys.stdout.buffer.write(data + b"\n")
        sys.stdout.buffer.flush()


def answer(request_id: Any, result: dict[str, Any]) -> None:
    send_line(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode())


def text_result(request_id: Any, text: str) -> None:
    answer(request_id, {"content": [{"type": "text", "text": text}], "isError": False})


def leave_a_grandchild(escape: bool) -> None:
    """`sleep 60` inheriting stdout and stderr; with `escape`, in a session of its own (out of our group)."""
    grandchild = subprocess.Popen(["sleep", "60"], start_new_session=escape)
    with open(os.environ["PID_FILE"], "a") as out:
        out.write(f"{grandchild.pid}\n")


def oversized(request_id: int, layout: str, size: int) -> bytes:
    content = json.dumps({"content": [{"type": "text", "text": "x" * size}]})
    if layout == "id-first":  # as the Python SDK writes it
        return f'{{"jsonrpc":"2.0","id":{request_id},"result":{content}}}'.encode()
    if layout == "id-last":  # as the TypeScript SDK writes it
        return f'{{"result":{content},"jsonrpc":"2.0","id":{request_id}}}'.encode()
    return f'{{"result":{content},"id":{request_id},"note":"the id is nowhere near either end"}}'.encode()


def call_tool(request_id: Any, name: str, arguments: dict[str, Any]) -> None:
    if name == "add":
        text_result(request_id, str(arguments["a"] + arguments["b"]))
    elif name == "slow":
        def later() -> None:
            time.sleep(arguments["seconds"])
            text_result(request_id, "slow done")
        threading.Thread(target=later, daemon=True).start()
    elif name == "exit_now":
        leave_a_grandchild(arguments.get("escape", False))
        os._exit(0)  # never answers
    elif name == "big":
        send_line(oversized(request_id, arguments["layout"], arguments["bytes"]))


def handle(message: dict[str, Any]) -> None:
    method, request_id = message.get("method"), message.get("id")
    if method is None or request_id is None or method == os.environ.get("HANG_ON"):
        return
    if method == "initialize":
        answer(request_id, {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                            "serverInfo": {"name": "faulty", "version": "1"}})
    elif method == "tools/list":
        answer(request_id, {"tools": TOOLS})
    elif method == "tools/call":
        call_tool(request_id, message["params"]["name"], message["params"].get("arguments") or {})
    elif method == "ping":
        answer(request_id, {})
    else:
        send_line(json.dumps({"jsonrpc": "2.0", "id": request_id,
                              "error": {"code": -32601, "message": f"Method not found: {method}"}}).encode())


def main() -> None:
    if os.environ.get("STDERR_NOTE"):
        print(os.environ["STDERR_NOTE"], file=sys.stderr, flush=True)
    for line in sys.stdin.buffer:
        if line.strip():
            handle(json.loads(line))


if __name__ == "__main__":
    main()
