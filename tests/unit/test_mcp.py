from __future__ import annotations

import pytest

from proxy import mcp


def test_protocol_version_prefers_the_header_then_meta_then_initialize() -> None:
    modern = {"method": "tools/list", "params": {"_meta": {mcp.META_PROTOCOL_VERSION: "2026-07-28"}}}
    init = {"method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
    assert mcp.protocol_version(modern, "2025-11-25") == "2025-11-25"
    assert mcp.protocol_version(modern, None) == "2026-07-28"
    assert mcp.protocol_version(init, None) == "2025-06-18"
    assert mcp.protocol_version({"method": "tools/list"}, None) == mcp.LEGACY_DEFAULT_VERSION


@pytest.mark.parametrize(("version", "era"), [("2026-07-28", mcp.Era.MODERN), ("2027-01-01", mcp.Era.MODERN),
                                              ("2025-11-25", mcp.Era.LEGACY), ("2024-11-05", mcp.Era.LEGACY)])
def test_era_by_version(version: str, era: mcp.Era) -> None:
    assert mcp.era_of(version) is era


def test_message_kinds() -> None:
    assert mcp.message_kind({"method": "x", "id": 1}) is mcp.Kind.REQUEST
    assert mcp.message_kind({"method": "x"}) is mcp.Kind.NOTIFICATION
    assert mcp.message_kind({"id": 1, "result": {}}) is mcp.Kind.RESPONSE


def test_targets() -> None:
    assert mcp.target_of("tools/call", {"name": "add"}) == "add"
    assert mcp.target_of("resources/read", {"uri": "demo://x"}) == "demo://x"
    assert mcp.target_of("tools/list", {"name": "add"}) is None
    assert mcp.target_of("tools/call", {"name": 3}) is None


def test_header_mismatch_rules() -> None:
    call = {"method": "tools/call", "params": {"name": "add"}}
    assert mcp.header_mismatch(call, "tools/call", "add") is None
    assert mcp.header_mismatch(call, "tools/call", "=?base64?YWRk?=") is None
    assert "Mcp-Method" in (mcp.header_mismatch(call, None, "add") or "")
    assert "Mcp-Name" in (mcp.header_mismatch(call, "tools/call", "sub") or "")
    assert "required" in (mcp.header_mismatch(call, "tools/call", None) or "")
    assert mcp.header_mismatch({"method": "tools/list"}, "tools/list", None) is None


def test_protocol_keys_in_other_cases_and_case_twins_are_ambiguous() -> None:
    ok = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}}
    assert mcp.ambiguous_key(ok, {"name": "a", "arguments": {"path": 1, "mode": 2}, "_meta": {}}) is None
    assert mcp.ambiguous_key(ok, {"name": "a", "extra": 1, "arguments": {"Path": 1}}) is None  # no twins
    assert "'Name'" in (mcp.ambiguous_key(ok, {"Name": "a"}) or "")
    assert "'path' and 'PATH'" in (mcp.ambiguous_key(ok, {"name": "a", "arguments": {"path": 1, "PATH": 2}}) or "")
    assert "'ID'" in (mcp.ambiguous_key({**ok, "ID": 2}, {}) or "")
    assert "'Params'" in (mcp.ambiguous_key({"jsonrpc": "2.0", "id": 1, "method": "x", "Params": {}}, {}) or "")
