"""The confirmation state: bound to principal, arguments and policy revision, expiring, used once."""

from __future__ import annotations

import pytest

from proxy.approval.confirmation import (
    INPUT_KEY,
    Binding,
    ConfirmationRefused,
    Confirmations,
    can_elicit,
    stripped,
)

BINDING = Binding("iss|alice", "sha256:a", "rev1")
YES = {INPUT_KEY: {"action": "accept", "content": {"confirm": True}}}


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def retry(confirmations: Confirmations, binding: Binding = BINDING) -> dict:
    return {"requestState": confirmations.ask(binding, "t")["requestState"], "inputResponses": YES}


@pytest.mark.parametrize("other", [Binding("iss|bob", "sha256:a", "rev1"), Binding("iss|alice", "sha256:b", "rev1"),
                                   Binding("iss|alice", "sha256:a", "rev2")])
def test_a_state_is_bound_to_principal_arguments_and_revision(other: Binding) -> None:
    confirmations = Confirmations(b"k" * 32, 60)
    with pytest.raises(ConfirmationRefused, match="another call"):
        confirmations.check(retry(confirmations), other)


def test_expired_and_other_key_states_are_refused() -> None:
    clock = Clock()
    confirmations = Confirmations(b"k" * 32, 60, clock)
    params = retry(confirmations)
    clock.now += 60
    with pytest.raises(ConfirmationRefused, match="expired"):
        confirmations.check(params, BINDING)
    with pytest.raises(ConfirmationRefused, match="not valid"):
        Confirmations(b"j" * 32, 60, clock).check(retry(confirmations), BINDING)


def test_a_no_uses_the_state_up() -> None:
    confirmations = Confirmations(None, 60)
    params = retry(confirmations)
    with pytest.raises(ConfirmationRefused, match="did not confirm"):
        confirmations.check({**params, "inputResponses": {INPUT_KEY: {"action": "decline"}}}, BINDING)
    with pytest.raises(ConfirmationRefused, match="used already"):
        confirmations.check(params, BINDING)


def test_capabilities_and_stripping() -> None:
    meta = "io.modelcontextprotocol/clientCapabilities"
    assert can_elicit({"_meta": {meta: {"elicitation": {}}}}) and can_elicit({"_meta": {meta: {"elicitation": {
        "form": {}}}}})
    assert not can_elicit({"_meta": {meta: {"elicitation": {"url": {}}}}}) and not can_elicit({"_meta": {meta: {}}})
    params = {"name": "t", "requestState": "x", "inputResponses": {**YES, "theirs": {"a": 1}}}
    assert stripped(params) == {"name": "t", "inputResponses": {"theirs": {"a": 1}}}
    assert stripped({"name": "t", "requestState": "x", "inputResponses": YES}) == {"name": "t"}
