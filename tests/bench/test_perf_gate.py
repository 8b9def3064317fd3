from bench.perf_gate import over_budget


def test_within_tolerance_passes() -> None:
    assert over_budget({"passthrough": 103_000}, {"passthrough": 100_000}, 0.03) == []


def test_over_tolerance_names_the_case_and_the_growth() -> None:
    (problem,) = over_budget({"passthrough": 103_100}, {"passthrough": 100_000}, 0.03)
    assert problem.startswith("passthrough: 103,100") and "+3.1%" in problem


def test_a_case_without_budget_fails() -> None:
    assert over_budget({"new-case": 1}, {}, 0.03) == ["new-case: no budget (run with --record)"]
