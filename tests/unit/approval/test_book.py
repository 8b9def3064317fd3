"""The in-process ApprovalBook: open, wait (a timeout is a denial), decide once, withdraw, list, the pending cap."""

from __future__ import annotations

import asyncio

import pytest

from proxy.approval.book import ApprovalBook, Decided, Outcome, PendingApproval, timed_out

SUMMARY = {"principal": "alice", "method": "tools/call", "tool": "delete", "reasons": ["destructive"],
           "arguments_hash": "sha256:a"}
HASH = SUMMARY["arguments_hash"]


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_timed_out_is_a_denial_naming_the_wait() -> None:
    assert timed_out(120) == Outcome(False, "no approval within 120s")
    assert timed_out(0.5) == Outcome(False, "no approval within 0.5s")


async def test_open_lists_the_summary_with_id_and_time() -> None:
    book = ApprovalBook(clock=Clock())
    approval = await book.open(SUMMARY)
    assert approval is not None and len(approval.id) == 32
    assert await book.pending() == [{"id": approval.id, "created": "2023-11-14T22:13:20Z",
                                     "expires": "2023-11-14T22:15:20Z", **SUMMARY}]  # RFC 3339, the default wait
    other = await book.open(SUMMARY)
    assert other is not None and other.id != approval.id


async def test_an_approved_call_gets_the_note_and_leaves_the_book() -> None:
    book = ApprovalBook()
    approval = await book.open(SUMMARY)
    assert approval is not None
    waiting = asyncio.ensure_future(book.wait(approval, 5))
    await asyncio.sleep(0)
    assert Decided.DECIDED is await book.decide(approval.id, HASH, Outcome(True, "ok by ops"))
    assert await asyncio.wait_for(waiting, 2) == Outcome(True, "ok by ops")
    assert await book.pending() == []


async def test_a_decision_made_before_the_wait_still_counts() -> None:
    book = ApprovalBook()
    approval = await book.open(SUMMARY)
    assert approval is not None
    assert Decided.DECIDED is await book.decide(approval.id, HASH, Outcome(False, "no"))
    assert await book.wait(approval, 5) == Outcome(False, "no")


async def test_only_the_first_decision_counts() -> None:
    book = ApprovalBook()
    approval = await book.open(SUMMARY)
    assert approval is not None
    assert Decided.DECIDED is await book.decide(approval.id, HASH, Outcome(False, ""))
    assert Decided.UNKNOWN is await book.decide(approval.id, HASH, Outcome(True, "too late"))
    assert await book.wait(approval, 5) == Outcome(False, "")


async def test_no_decision_in_time_is_a_denial_and_cannot_be_decided_after() -> None:
    book = ApprovalBook()
    approval = await book.open(SUMMARY)
    assert approval is not None
    assert await book.wait(approval, 0.01) == Outcome(False, "no approval within 0.01s")
    assert await book.pending() == []
    assert Decided.UNKNOWN is await book.decide(approval.id, HASH, Outcome(True, ""))


async def test_an_unknown_id_cannot_be_decided() -> None:
    assert Decided.UNKNOWN is await ApprovalBook().decide("nope", HASH, Outcome(True, ""))


async def test_a_withdrawn_call_cannot_be_decided() -> None:
    book = ApprovalBook()
    approval = await book.open(SUMMARY)
    assert approval is not None
    book.withdraw(approval)
    book.withdraw(approval)  # twice is harmless
    assert await book.pending() == [] and Decided.UNKNOWN is await book.decide(approval.id, HASH, Outcome(True, ""))


async def test_a_cancelled_wait_leaves_the_book() -> None:
    book = ApprovalBook()
    approval = await book.open(SUMMARY)
    assert approval is not None
    waiting = asyncio.ensure_future(book.wait(approval, 30))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await book.pending() == []


async def test_a_full_book_refuses_and_frees_a_slot_when_one_ends() -> None:
    book = ApprovalBook(max_pending=2)
    first, second = await book.open(SUMMARY), await book.open(SUMMARY)
    assert first is not None and second is not None
    assert await book.open(SUMMARY) is None
    await book.decide(first.id, HASH, Outcome(True, ""))
    assert await book.open(SUMMARY) is None  # decided but its waiter has not collected it yet
    assert await book.wait(first, 1) == Outcome(True, "")
    assert await book.open(SUMMARY) is not None


async def test_lifecycle_and_readiness() -> None:
    book = ApprovalBook()
    await book.start()
    assert await book.readiness() == (True, "pending approvals kept in this process")
    await book.close()


async def test_pending_approval_listing_puts_id_and_created_first() -> None:
    approval = PendingApproval.new({"tool": "x"}, 5.0, 60)
    assert list(approval.listing()) == ["id", "created", "expires", "tool"]
    assert not approval.outcome.done() and "outcome" not in repr(approval)


async def test_a_decision_naming_other_arguments_releases_nothing() -> None:
    book = ApprovalBook()
    approval = await book.open(SUMMARY)
    assert approval is not None
    assert await book.decide(approval.id, "sha256:other", Outcome(True, "")) is Decided.MISMATCH
    assert await book.get(approval.id) == approval.listing()
    assert await book.decide(approval.id, HASH, Outcome(True, "", "bob")) is Decided.DECIDED
    assert await book.wait(approval, 1) == Outcome(True, "", "bob") and await book.get(approval.id) is None
