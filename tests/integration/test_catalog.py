"""The sidecar's own view of the upstream's tools, fetched over both eras."""

from __future__ import annotations

from proxy.catalog import ANNOTATION_DEFAULTS, ToolCatalog, ToolInfo
from proxy.upstream.http import HttpUpstream
from proxy.upstream.listing import legacy_session, modern_session
from tests.kit import make_config


async def test_catalog_reads_annotations_with_defaults(upstream_url: str) -> None:
    upstream = HttpUpstream(make_config(upstream_url).upstream)
    await upstream.start()
    try:
        catalog = ToolCatalog(upstream)
        add = await catalog.get("add")
        delete = await catalog.get("delete_file")
        assert await catalog.get("no_such_tool") is None
    finally:
        await upstream.close()
    assert add is not None and add.annotations["readOnlyHint"] is True
    assert add.annotations["openWorldHint"] is False
    assert delete is not None and delete.annotations["destructiveHint"] is True
    assert delete.annotations["readOnlyHint"] is False


async def test_legacy_handshake_lists_the_same_tools(stateful_upstream: str) -> None:
    upstream = HttpUpstream(make_config(stateful_upstream).upstream)
    await upstream.start()
    try:
        async with legacy_session(upstream) as session:
            assert session is not None
            legacy = await session.list_all("tools/list", "tools")
        modern = await modern_session(upstream).list_all("tools/list", "tools")
    finally:
        await upstream.close()
    assert legacy is not None and modern is not None
    assert sorted(t["name"] for t in legacy) == sorted(t["name"] for t in modern)


async def test_unreachable_upstream_gives_no_catalog() -> None:
    upstream = HttpUpstream(make_config("http://127.0.0.1:9/mcp").upstream)
    await upstream.start()
    try:
        assert await ToolCatalog(upstream).all() is None
    finally:
        await upstream.close()


def test_unannotated_tool_takes_the_protocol_defaults() -> None:
    info = ToolInfo.from_definition({"name": "t", "inputSchema": {"type": "object"}})
    assert info.annotations == ANNOTATION_DEFAULTS
    same = ToolInfo.from_definition({"inputSchema": {"type": "object"}, "name": "t"})
    assert same.hash == info.hash
    assert ToolInfo.from_definition({"name": "t", "inputSchema": {}}).hash != info.hash
