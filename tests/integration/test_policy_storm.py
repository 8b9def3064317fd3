"""A policy storm: 100 pushes under load, allowing, broken and denying in turn, swapped atomically as a config repo
deploy or a Kubernetes ConfigMap update would. No call is allowed that the policy in force denies, none denied that
it allows, and a broken push never takes the place of the bundle in force."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from tests.kit import make_config, modern_headers, modern_request, run_sidecar, start_raw_upstream, wait_until

PUSHES = 100
CALLERS = 4
ALLOW = 'package mcp\nimport rego.v1\ndecision := {"allow": true}\n'
DENY = 'package mcp\nimport rego.v1\ndecision := {"allow": false, "reasons": ["storm says no"]}\n'
BROKEN = 'package mcp\nimport rego.v1\ndecision := {"allow": \n'


async def answer(request: web.Request, body: bytes) -> web.Response:
    message = orjson.loads(body)
    result = {"content": [{"type": "text", "text": "done"}], "isError": False}
    return web.json_response({"jsonrpc": "2.0", "id": message["id"], "result": result})


def push(root: Path, number: int, rego: str, revision: str) -> None:
    """A new directory with the policy and its manifest, then the `current` link swapped to it in one rename."""
    version = root / f"v{number}"
    version.mkdir()
    (version / "policy.rego").write_text(rego)
    (version / ".manifest").write_text(orjson.dumps({"revision": revision}).decode())
    link = root / f"link{number}"
    link.symlink_to(version.name)
    os.replace(link, root / "current")


def planned(number: int) -> tuple[str, str]:
    if number % 2:
        return BROKEN, f"broken-{number}"
    return (ALLOW, f"allow-{number}") if number % 4 == 0 else (DENY, f"deny-{number}")


async def call_until(stop: asyncio.Event, url: str, outcomes: list[bool]) -> None:
    body = orjson.dumps(modern_request("tools/call", {"name": "echo", "arguments": {}}))
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            async with http.post(url, data=body, headers=modern_headers("tools/call", "echo")) as response:
                outcomes.append(orjson.loads(await response.read())["result"]["isError"])


async def test_no_call_is_decided_by_a_policy_not_in_force(tmp_path: Path) -> None:
    root = tmp_path / "policies"
    root.mkdir()
    push(root, 0, ALLOW, "allow-0")
    audit = tmp_path / "audit.jsonl"
    stop, outcomes = asyncio.Event(), []
    async with start_raw_upstream(answer) as upstream:
        config = make_config(upstream.url, policy__engine="rego", policy__directory=str(root / "current"),
                             policy__reload_interval_seconds=0.02, audit__enabled=True, audit__sink="file",
                             audit__path=str(audit))
        async with run_sidecar(config) as sidecar:
            loader = next(stage for stage in sidecar.app.stages if stage.name == "policy").engine.loader
            callers = [asyncio.create_task(call_until(stop, sidecar.url, outcomes)) for _ in range(CALLERS)]
            try:
                for number in range(1, PUSHES + 1):
                    rego, revision = planned(number)
                    seen = loader.reloads + loader.reload_failures
                    push(root, number, rego, revision)
                    await wait_until(lambda seen=seen: loader.reloads + loader.reload_failures > seen)
                    expected = revision if rego is not BROKEN else planned(number - 1)[1]
                    assert loader.current.revision == expected
            finally:
                stop.set()
                await asyncio.gather(*callers)
    events = [orjson.loads(line) for line in audit.read_text().splitlines()]
    decided = [(event["policy_revision"], event["outcome"]) for event in events if event["method"] == "tools/call"]
    assert len(decided) == len(outcomes) > PUSHES  # every call is in the audit, and the storm ran under load
    wrong = [pair for pair in decided if pair[1] != ("allowed" if pair[0].startswith("allow-") else "denied")]
    assert wrong == []
    assert not any(revision.startswith("broken-") for revision, _ in decided)
    assert {revision.split("-")[0] for revision, _ in decided} == {"allow", "deny"}
    assert loader.reloads == PUSHES // 2 and loader.reload_failures == PUSHES // 2

