"""RFC 3339 timestamps: what datetime.isoformat writes, from integer nanoseconds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from proxy.timestamps import utc_text


@pytest.mark.parametrize("now_ns", [0, 1_795_595_262_000_000_000, 1_795_595_262_000_999_999, 1_795_595_262_123_456_789,
                                    1_795_595_263_999_999_999, 4_102_444_800_000_001_000])
def test_utc_text_is_isoformat_of_the_truncated_microsecond(now_ns: int) -> None:
    moment = datetime.fromtimestamp(now_ns // 1_000_000_000, UTC).replace(microsecond=now_ns // 1000 % 1_000_000)
    assert utc_text(now_ns) == moment.isoformat(timespec="microseconds")
    assert utc_text(now_ns, zone="Z", always_fraction=False) == moment.isoformat().replace("+00:00", "Z")
