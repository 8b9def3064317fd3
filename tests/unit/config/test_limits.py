"""Rate-limit config: bucket key parts are checked when the config loads."""

from __future__ import annotations

import pytest

from proxy.config.limits import check_key_part


def test_key_parts_are_checked() -> None:
    assert check_key_part("subject") == "subject"
    assert check_key_part("claim:org.plan") == "claim:org.plan"
    for bad in ("user", "claim:", "claim:a..b", "Subject"):
        with pytest.raises(ValueError, match="unknown key part"):
            check_key_part(bad)
