"""Human approval of calls that policy marks `require_approval`: a book of pending requests and their outcome.

No aiohttp here: the admin listener and the approval stage both talk to an ApprovalBook.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class PendingApproval:
    id: str
    summary: dict[str, Any]  # what an approver sees: principal, method, tool, reasons (never arguments)
    created: float
    outcome: asyncio.Future[tuple[bool, str]] = field(repr=False)


class ApprovalBook:
    def __init__(self, max_pending: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self.max_pending = max_pending
        self.clock = clock
        self._pending: dict[str, PendingApproval] = {}

    def open(self, summary: dict[str, Any]) -> PendingApproval | None:
        """Register a call awaiting approval; None when the book is full (the caller must then deny)."""
        if len(self._pending) >= self.max_pending:
            return None
        approval = PendingApproval(id=uuid.uuid4().hex, summary=summary, created=self.clock(),
                                   outcome=asyncio.get_running_loop().create_future())
        self._pending[approval.id] = approval
        return approval

    async def wait(self, approval: PendingApproval, within_seconds: float) -> tuple[bool, str]:
        """(approved, note); a timeout is a denial. The entry leaves the book either way."""
        try:
            async with asyncio.timeout(within_seconds):
                return await asyncio.shield(approval.outcome)
        except TimeoutError:
            return False, f"no approval within {within_seconds:g}s"
        finally:
            self._pending.pop(approval.id, None)

    def withdraw(self, approval: PendingApproval) -> None:
        """The call is over (its client left, or its answer is written): nobody waits for a decision any more."""
        self._pending.pop(approval.id, None)

    def decide(self, approval_id: str, approved: bool, note: str = "") -> bool:
        """Record an approver's decision; False when there is no such pending approval."""
        approval = self._pending.get(approval_id)
        if approval is None or approval.outcome.done():
            return False
        approval.outcome.set_result((approved, note))
        return True

    def pending(self) -> list[dict[str, Any]]:
        return [{"id": a.id, "created": a.created, **a.summary} for a in self._pending.values()]
