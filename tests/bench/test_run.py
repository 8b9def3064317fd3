"""The runner's settings: rounds come in forward/backward pairs so that drift weighs on every target alike."""

from __future__ import annotations

import argparse

import pytest

from bench.run import HERE, settings_from


def args(**given) -> argparse.Namespace:
    defaults = {"scenarios": str(HERE / "scenarios.yaml"), "quick": False, "groups": None, "clients": None,
                "seconds": None, "rounds": None}
    return argparse.Namespace(**{**defaults, **given})


def test_an_odd_number_of_rounds_is_refused_with_the_reason() -> None:
    with pytest.raises(SystemExit, match="even number"):
        settings_from(args(rounds=3))


def test_even_rounds_one_round_and_the_defaults_are_accepted() -> None:
    assert settings_from(args(rounds=4)).rounds == 4
    assert settings_from(args(rounds=1)).rounds == 1
    assert settings_from(args()).rounds % 2 == 0
    assert settings_from(args(quick=True)).rounds == 1
