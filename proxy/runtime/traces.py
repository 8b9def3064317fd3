"""`mcp-sidecar traces show FILE`: the spans of a JSON-lines file (`telemetry.exporter: file`) as trees.

One tree per trace, oldest first; children under their parent by start time, each line with the span's name,
kind, duration, status and its key attributes. A span whose parent is not in the file (a client's span, or one
exported elsewhere) starts a tree of its own, marked with the parent's id.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from proxy.telemetry.export.json_lines import read_spans

EXIT_BAD_INPUT = 2
KEY_ATTRIBUTES = ("gen_ai.tool.name", "gen_ai.prompt.name", "mcp.resource.uri", "jsonrpc.request.id",
                  "mcp_sidecar.outcome", "error.type", "http.response.status_code", "server.address")


def add_parser(commands: Any) -> None:
    traces = commands.add_parser("traces", help="read spans written by telemetry.exporter: file")
    actions = traces.add_subparsers(title="traces commands", required=True)
    show = actions.add_parser("show", help="print the traces of a JSON-lines span file as trees")
    show.add_argument("file", help="the file of telemetry.file_path (- for stdin)")
    show.add_argument("--trace", help="only the trace with this id (or an id prefix)")
    show.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    try:
        lines = sys.stdin.readlines() if args.file == "-" else Path(args.file).read_text().splitlines()
    except OSError as exc:
        print(f"mcp-sidecar: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    spans, bad = read_spans(lines)
    for number in bad:
        print(f"mcp-sidecar: {args.file}:{number}: not a span record, skipped", file=sys.stderr)
    if args.trace:
        spans = [span for span in spans if span["trace_id"].startswith(args.trace.lower())]
    print("\n\n".join(render_trace(trace) for trace in group_traces(spans)) or "no spans")
    return 0


def group_traces(spans: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The spans by trace, each trace's spans in start order, traces by their first start."""
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in sorted(spans, key=_start):
        traces[span["trace_id"]].append(span)
    return list(traces.values())


def render_trace(spans: list[dict[str, Any]]) -> str:
    ids = {span["span_id"] for span in spans}
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    roots = []
    for span in spans:
        parent = span.get("parent_span_id")
        (children[parent] if parent in ids else roots).append(span)
    lines = [f"trace {spans[0]['trace_id']}"]
    for index, root in enumerate(roots):
        _render(root, children, "", index == len(roots) - 1, lines)
    return "\n".join(lines)


def _render(span: dict[str, Any], children: dict[str | None, list[dict[str, Any]]], prefix: str, last: bool,
            lines: list[str]) -> None:
    remote = not prefix and span.get("parent_span_id")  # a root whose parent is elsewhere
    lines.append(prefix + ("└─ " if last else "├─ ") + describe(span) + (f" (parent {remote})" if remote else ""))
    below = children.get(span["span_id"], [])
    for index, child in enumerate(below):
        _render(child, children, prefix + ("   " if last else "│  "), index == len(below) - 1, lines)


def describe(span: dict[str, Any]) -> str:
    """`name [KIND] 12.3 ms service` with the status when not OK and the key attributes."""
    parts = [span["name"], f"[{span.get('kind', '?')}]", f"{span.get('duration_ms', 0):.1f} ms"]
    if span.get("service"):
        parts.append(str(span["service"]))
    if span.get("status") == "ERROR":
        parts.append(f"ERROR({span.get('status_message') or ''})")
    attributes = span.get("attributes") or {}
    shown = [f"{key}={attributes[key]}" for key in KEY_ATTRIBUTES if key in attributes]
    return " ".join(parts + shown)


def _start(span: dict[str, Any]) -> int:
    value = span.get("start_unix_nano")
    return value if isinstance(value, int) else 0
