"""A tiny 2026-07-28 MCP server whose tool asks for input the multi-round-trip way (InputRequiredResult).

    python -m tests.integration.mrtr_upstream PORT
"""

from __future__ import annotations

import sys
from collections import Counter

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ElicitRequest, ElicitRequestFormParams, InputRequiredResult

server = MCPServer("mrtr-upstream", version="0.1.0")
legs: Counter[str] = Counter()


@server.tool()
async def approve(action: str, ctx: Context) -> str | InputRequiredResult:
    """Ask the user to approve `action` (first leg), then act on the answer (retry)."""
    answer = (ctx.input_responses or {}).get("approval")
    if answer is None:
        legs["asked"] += 1
        question = ElicitRequestFormParams(message=f"Approve {action}?", requested_schema={
            "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})
        return InputRequiredResult(input_requests={"approval": ElicitRequest(params=question)},
                                   request_state=f"approve:{action}")
    legs["answered"] += 1
    return f"{action}: {'approved' if answer.content and answer.content.get('ok') else 'declined'}"


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]), stateless_http=True, json_response=True)
