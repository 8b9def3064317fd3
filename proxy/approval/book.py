"""Human approval of calls that policy marks `require_approval`: a book of pending requests and their outcome.

No aiohttp here: the admin listener and the approval stage both talk to an ApprovalBook. This one keeps the book in
the process (one worker, one replica); `proxy.approval.redis_book` shares it between every sidecar using the same Redis.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Outcome = tuple[bool, str]  # (approved, the approver's note or why there was no decision)


@dataclass(slots=True)
class PendingApproval:
    id: str
    summary: dict[str, Any]  # what an approver sees: principal, method, tool, reasons (never arguments)
    created: float
    outcome: asyncio.Future[Outcome] = field(repr=False)

    @classmethod
    def new(cls, summary: dict[str, Any], created: float) -> PendingApproval:
        return cls(id=uuid.uuid4().hex, summary=summary, created=created,
                   outcome=asyncio.get_running_loop().create_future())

    def listing(self) -> dict[str, Any]:
        return {"id": self.id, "created": self.created, **self.summary}


def timed_out(within_seconds: float) -> Outcome:
    return False, f"no approval within {within_seconds:g}s"


class ApprovalBook:
    """Pending approvals of this process. Every method a store could fail in is async, as the shared book's are."""

    def __init__(self, max_pending: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self.max_pending = max_pending
        self.clock = clock
        self._pending: dict[str, PendingApproval] = {}

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release: the calls still waiting end with the sidecar's drain."""

    async def open(self, summary: dict[str, Any]) -> PendingApproval | None:
        """Register a call awaiting approval; None when the book is full (the caller must then deny)."""
        if len(self._pending) >= self.max_pending:
            return None
        approval = PendingApproval.new(summary, self.clock())
        self._pending[approval.id] = approval
        return approval

    async def wait(self, approval: PendingApproval, within_seconds: float) -> Outcome:
        """(approved, note); a timeout is a denial. The entry leaves the book either way."""
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

    async def decide(self, approval_id: str, approved: bool, note: str = "") -> bool:
        """Record an approver's decision; False when there is no such pending approval."""
        approval = self._pending.get(approval_id)
        if approval is None or approval.outcome.done():
            return False
        approval.outcome.set_result((approved, note))
        return True

    async def pending(self) -> list[dict[str, Any]]:
        return [approval.listing() for approval in self._pending.values()]

    async def readiness(self) -> tuple[bool, str]:
        return True, "pending approvals kept in this process"
