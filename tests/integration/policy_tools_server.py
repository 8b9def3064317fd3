"""A small MCP server with the kinds of tools the shipped argument policies govern (SQL, files), for tests.

    python tests/integration/policy_tools_server.py PORT
"""

from __future__ import annotations

import sys

from mcp.server import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("policy-tools", version="0.1.0")
READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)


@server.tool(annotations=READ_ONLY)
def run_query(sql: str) -> str:
    """Pretend to run a SQL statement."""
    return f"ran: {sql}"


@server.tool(annotations=READ_ONLY)
def read_file(path: str) -> str:
    """Pretend to read a file."""
    return f"contents of {path}"


@server.tool(annotations=READ_ONLY)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]), stateless_http=True, json_response=True)
