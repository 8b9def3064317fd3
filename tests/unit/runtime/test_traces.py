"""`traces show`: grouping, nesting, errors and lines that are not spans."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from proxy.runtime.cli import main


def span(span_id: str, parent: str | None, name: str, start: int, trace: str = "a" * 32, **extra: object) -> dict:
    return {"trace_id": trace, "span_id": span_id, "parent_span_id": parent, "name": name, "kind": "INTERNAL",
            "start_unix_nano": start, "duration_ms": 1.5, "status": "UNSET", "attributes": {}, **extra}


def write(path: Path, records: list[dict], extra: str = "") -> Path:
    path.write_text("".join(orjson.dumps(record).decode() + "\n" for record in records) + extra)
    return path


def show(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["traces", "show", *argv])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_children_nest_under_their_parent_in_start_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [span("c2", "r1", "second", 30), span("r1", None, "root", 10), span("c1", "r1", "first", 20),
               span("g1", "c1", "grandchild", 25, status="ERROR", status_message="boom",
                    attributes={"gen_ai.tool.name": "add", "gen_ai.tool.call.arguments": "{}"})]
    code, out, _ = show([str(write(tmp_path / "t.jsonl", records))], capsys)
    assert code == 0
    assert out.splitlines() == [
        f"trace {'a' * 32}",
        "└─ root [INTERNAL] 1.5 ms",
        "   ├─ first [INTERNAL] 1.5 ms",
        "   │  └─ grandchild [INTERNAL] 1.5 ms ERROR(boom) gen_ai.tool.name=add",
        "   └─ second [INTERNAL] 1.5 ms",
    ]


def test_traces_apart_a_filter_and_bad_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [span("r1", None, "one", 10), span("r2", "elsewhere", "two", 5, trace="b" * 32)]
    path = write(tmp_path / "t.jsonl", records, extra="not json\n[1]\n")
    code, out, err = show([str(path)], capsys)
    assert code == 0
    assert out.index("trace " + "b" * 32) < out.index("trace " + "a" * 32)  # by first start
    assert "two [INTERNAL] 1.5 ms (parent elsewhere)" in out
    assert "t.jsonl:3: not a span record" in err and "t.jsonl:4:" in err
    code, out, _ = show([str(path), "--trace", "bbb"], capsys)
    assert "one" not in out and "two" in out


def test_a_missing_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = show([str(tmp_path / "absent.jsonl")], capsys)
    assert code == 2 and "cannot read" in err
