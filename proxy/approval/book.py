"""Human approval of calls that policy marks `require_approval`: a book of pending requests and their outcome.

No aiohttp here: the admin listener and the approval stage both talk to an ApprovalBook. This one keeps the book in
the process (one worker, one replica); `proxy.approval.redis_book` shares it between every sidecar using the same Redis.

A decision names the approval id and the hash of the exact arguments it was shown (`arguments_hash` in the
listing): one that names other arguments is refused, so an approver never releases a call they did not see.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from proxy.timestamps import utc_text


@dataclass(frozen=True, slots=True)
class Outcome:
    approved: bool
    note: str  # the approver's note, or why there was no decision
    approver: str | None = None  # who decided (admin credential name, JWT subject, "link"); None when nobody did


class Decided(Enum):
    DECIDED = "decided"
    UNKNOWN = "unknown"  # no such pending approval (never was, decided already, or expired)
    MISMATCH = "mismatch"  # pending, but the decision names other arguments


def rfc3339(seconds: float) -> str:
    return utc_text(int(seconds * 1_000_000_000), zone="Z", always_fraction=False)


@dataclass(slots=True)
class PendingApproval:
    id: str
    summary: dict[str, Any]  # what an approver sees: principal, tool, arguments (as shown), hash, annotations, reasons
    created: float
    expires: float
    outcome: asyncio.Future[Outcome] = field(repr=False)

    @classmethod
    def new(cls, summary: dict[str, Any], created: float, timeout_seconds: float) -> PendingApproval:
        return cls(id=uuid.uuid4().hex, summary=summary, created=created, expires=created + timeout_seconds,
                   outcome=asyncio.get_running_loop().create_future())

    @property
    def arguments_hash(self) -> str | None:
        return self.summary.get("arguments_hash")

    def listing(self) -> dict[str, Any]:
        return {"id": self.id, "created": rfc3339(self.created), "expires": rfc3339(self.expires), **self.summary}


def timed_out(within_seconds: float) -> Outcome:
    return Outcome(False, f"no approval within {within_seconds:g}s")


class ApprovalBook:
    """Pending approvals of this process. Every method a store could fail in is async, as the shared book's are."""

    def __init__(self, max_pending: int = 1000, clock: Callable[[], float] = time.time,
                 timeout_seconds: float = 120.0) -> None:
        self.max_pending = max_pending
        self.clock = clock
        self.timeout_seconds = timeout_seconds
        self._pending: dict[str, PendingApproval] = {}

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release: the calls still waiting end with the sidecar's drain."""

    async def open(self, summary: dict[str, Any]) -> PendingApproval | None:
        """Register a call awaiting approval; None when the book is full (the caller must then deny)."""
        if len(self._pending) >= self.max_pending:
            return None
        approval = PendingApproval.new(summary, self.clock(), self.timeout_seconds)
        self._pending[approval.id] = approval
        return approval

    async def wait(self, approval: PendingApproval, within_seconds: float) -> Outcome:
        """The outcome; a timeout is a denial. The entry leaves the book either way."""
        try:
            async with asyncio.timeout(within_seconds):
                return await asyncio.shield(approval.outcome)
        except TimeoutError:
            return timed_out(within_seconds)
        finally:
            self._pending.pop(approval.id, None)

    def withdraw(self, approval: PendingApproval) -> None:
        """The call is over (its client left, or its answer is written): nobody waits for a decision any more."""
        self._pending.pop(approval.id, None)

    async def decide(self, approval_id: str, arguments_hash: str, outcome: Outcome) -> Decided:
        """Record an approver's decision on the call with exactly these arguments."""
        approval = self._pending.get(approval_id)
        if approval is None or approval.outcome.done():
            return Decided.UNKNOWN
        if approval.arguments_hash != arguments_hash:
            return Decided.MISMATCH
        approval.outcome.set_result(outcome)
        return Decided.DECIDED

    async def pending(self) -> list[dict[str, Any]]:
        return [approval.listing() for approval in self._pending.values()]

    async def get(self, approval_id: str) -> dict[str, Any] | None:
        approval = self._pending.get(approval_id)
        return approval.listing() if approval is not None and not approval.outcome.done() else None

    async def readiness(self) -> tuple[bool, str]:
        return True, "pending approvals kept in this process"
