"""RFC 3339 UTC timestamps for every call (policy input, audit events), without a datetime object per call."""

from __future__ import annotations

from datetime import UTC, datetime

_second: tuple[int, str] = (-1, "")  # the last second formatted, and its date and time of day


def utc_text(now_ns: int, zone: str = "+00:00", always_fraction: bool = True) -> str:
    """`now_ns` as datetime.isoformat writes it in UTC (microseconds truncated), with `zone` for the offset; without
    `always_fraction` a whole second has no fraction, as isoformat's default does. The date and time of day are
    formatted once per second: 0.6 instead of 2.3 us."""
    global _second
    seconds, nanoseconds = divmod(now_ns, 1_000_000_000)
    second = _second  # read once: another thread may replace it meanwhile
    if second[0] != seconds:
        second = _second = seconds, datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    microseconds = nanoseconds // 1000
    if microseconds or always_fraction:
        return f"{second[1]}.{microseconds:06d}{zone}"
    return second[1] + zone
