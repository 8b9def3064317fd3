"""A bounded queue of messages for one client stream: the sidecar's backpressure rule.

A reader (an upstream process's stdout, an upstream SSE stream) never waits for a slow client: it drops messages
into the client's mailbox. When a mailbox holds `limit` undelivered messages the client is too slow; the mailbox
then drops what it holds and fails, so its consumer closes that one client's stream, and memory stays bounded by
`limit` messages per stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

Item = TypeVar("Item")


class MailboxClosedError(Exception):
    """The mailbox was closed: by its producer (with a reason) or because its consumer fell behind."""


class Mailbox(Generic[Item]):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[Item] = deque()
        self._wakeup = asyncio.Event()
        self._error: BaseException | None = None
        self.overflowed = False

    @property
    def closed(self) -> bool:
        return self._error is not None

    @property
    def pending(self) -> int:
        """Items queued and not yet taken."""
        return len(self._items)

    def put(self, item: Item) -> bool:
        """Queue an item; False when the mailbox is closed or just overflowed (it is closed then)."""
        if self._error is not None:
            return False
        if len(self._items) >= self.limit:
            self.overflowed = True
            self.close(MailboxClosedError(f"client fell {self.limit} messages behind"), discard=True)
            return False
        self._items.append(item)
        self._wakeup.set()
        return True

    def close(self, error: BaseException | None = None, *, discard: bool = False) -> None:
        """No more items; the consumer gets what is queued (unless discarded), then `error`."""
        if self._error is None:
            self._error = error or MailboxClosedError("closed")
            if discard:
                self._items.clear()
            self._wakeup.set()

    async def get(self) -> Item:
        while not self._items:
            if self._error is not None:
                raise self._error
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._items.popleft()
