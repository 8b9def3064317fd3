"""`mcp-sidecar policy init --from-upstream URL|COMMAND`: a starter data.json for the shipped policies, made from
the tools of the server that will sit behind the sidecar (see proxy/policy/starter.py for the grouping)."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from pathlib import Path
from typing import Any

import orjson

from proxy.policy.starter import ADDITIVE, DESTRUCTIVE, READ_ONLY, Starter, starter_data

EXIT_BAD_INPUT = 2
LIST_TIMEOUT_SECONDS = 60.0  # an npx server may download itself first
MAX_PAGES = 100


def add_parser(actions: Any) -> None:
    init = actions.add_parser("init", help="write a starter data.json from the tools of the server behind the sidecar")
    init.add_argument("--from-upstream", required=True, metavar="URL|COMMAND",
                      help='Streamable HTTP URL, or a stdio command line ("npx -y @scope/server")')
    init.add_argument("--output", default="policies/data.json", help="where to write (default policies/data.json)")
    init.add_argument("--force", action="store_true", help="replace an existing file (its other settings are kept)")
    init.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.exists() and not args.force:
        print(f"mcp-sidecar: {output} exists; --force replaces its roles (its other settings are kept)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        base = orjson.loads(output.read_bytes()) if output.exists() else None
        tools = asyncio.run(asyncio.wait_for(list_tools(args.from_upstream), LIST_TIMEOUT_SECONDS))
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"mcp-sidecar: {output}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # the SDK's connection and protocol errors have no common base
        print(f"mcp-sidecar: could not list the tools of {args.from_upstream}: {_reason(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    starter = starter_data(tools, base if isinstance(base, dict) else None)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(orjson.dumps(starter.data, option=orjson.OPT_INDENT_2) + b"\n")
    print(summary(output, starter))
    return 0


async def list_tools(target: str) -> list[tuple[str, dict[str, Any] | None]]:
    """(name, wire annotations) of every tool, over every page."""
    from mcp import Client, StdioServerParameters

    if target.startswith(("http://", "https://")):
        server: Any = target
    else:
        command, *arguments = shlex.split(target)
        server = StdioServerParameters(command=command, args=arguments)  # the SDK's minimal environment
    found: list[tuple[str, dict[str, Any] | None]] = []
    async with Client(server, cache=None) as client:
        cursor = None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                hints = tool.annotations
                found.append((tool.name, hints.model_dump(by_alias=True, exclude_none=True) if hints else None))
            cursor = page.next_cursor
            if not cursor:
                break
    return found


def summary(output: Path, starter: Starter) -> str:
    groups = starter.groups
    lines = [f"wrote {output}: {sum(len(names) for names in groups.values())} tools"]
    for label, group, roles in ((READ_ONLY, READ_ONLY, "reader, editor, operator, admin"),
                                (ADDITIVE, ADDITIVE, "editor, operator, admin"),
                                (DESTRUCTIVE + " or unannotated", DESTRUCTIVE, "admin; operator with approval")):
        lines.append(f"  {label} ({roles}): {', '.join(groups[group]) or '-'}")
    lines.append("review it, then: mcp-sidecar policy test " + str(output.parent))
    return "\n".join(lines)


def _reason(exc: BaseException) -> str:
    """The innermost cause: the SDK wraps connection errors in task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
