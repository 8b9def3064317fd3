"""docs/configuration.md is generated from the model and must match it: every key documented, none stale."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field

from proxy.config import Config
from proxy.config.base import Section
from proxy.config.reference import REFERENCE_PATH, REGENERATE, MissingDescriptionError, main, render, rows


def test_the_checked_in_reference_matches_the_model() -> None:
    expected = render()
    current = REFERENCE_PATH.read_text() if REFERENCE_PATH.exists() else ""
    assert current == expected, (f"{REFERENCE_PATH} is out of date with proxy/config/: regenerate it with "
                                 f"`.venv/bin/{REGENERATE}` and commit the result")


def test_every_key_of_the_model_has_a_row() -> None:
    keys = {row.key for row in rows(Config)}
    assert {"server.listen", "upstream.headers.<name>.file", "auth.upstream_identity.key_file",
            "rate_limits.buckets[].match.claims", "cache.methods.<name>.scope", "logging.level"} <= keys
    assert all(row.meaning for row in rows(Config))


class Inner(Section):
    depth: int = Field(default=3, gt=0, le=9)
    """How deep."""


class Documented(Section):
    mode: Literal["a", "b"] = "a"
    """Which one."""
    token: str | None = Field(default=None, json_schema_extra={"secret": True})
    """A credential | with a pipe."""
    inner: Inner = Inner()
    """Nested."""
    many: tuple[Inner, ...] = ()
    """A list of them."""


class Root(Section):
    only: Documented = Documented()
    """The one section."""


def test_a_row_shows_type_bounds_default_and_the_docstring() -> None:
    table = {row.key: row for row in rows(Documented)}
    assert table["mode"].type == "one of `a`, `b`" and table["mode"].default == "`a`"
    assert table["token"].default == "unset"
    assert table["token"].meaning == "A credential \\| with a pipe. Secret: `config check` masks it."
    assert (table["inner.depth"].type, table["inner.depth"].default) == ("int, > 0, <= 9", "`3`")
    assert table["many"].type == "list of sections" and "many[].depth" in table
    assert "| `only.inner.depth` | int, > 0, <= 9 | `3` | How deep. |" in render(Root)


def test_a_section_with_kinds_lists_every_key_once_the_choosing_keys_first() -> None:
    upstream = [row for row in rows(Config) if row.key.startswith("upstream.")]
    keys = [row.key for row in upstream]
    assert len(keys) == len(set(keys))
    assert keys[:4] == ["upstream.kind", "upstream.url", "upstream.command", "upstream.sse_url"]
    table = {row.key: row for row in upstream}
    assert table["upstream.kind"].type == "one of `http`, `stdio`, `sse`"
    assert table["upstream.env"].meaning.endswith("Kind `stdio` only.")
    assert table["upstream.headers.<name>.file"].meaning.endswith("Kinds `http`, `sse` only.")
    assert not table["upstream.timeout_seconds"].meaning.endswith("only.")  # every kind reads it


class Undocumented(Section):
    shown: int = 1
    """Documented."""
    forgotten: int = 2  # a comment is not a description


class RootWithGap(Section):
    section: Undocumented = Undocumented()
    """Has a gap."""


def test_a_key_without_a_docstring_is_refused_by_name() -> None:
    with pytest.raises(MissingDescriptionError) as caught:
        render(RootWithGap)
    assert caught.value.keys == ["section.forgotten"]


def test_the_command_writes_then_checks(tmp_path) -> None:
    target = tmp_path / "configuration.md"
    assert main(["--output", str(target), "--check"]) == 1
    assert main(["--output", str(target)]) == 0
    assert target.read_text() == render()
    assert main(["--output", str(target), "--check"]) == 0
