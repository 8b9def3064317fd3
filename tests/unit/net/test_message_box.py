from __future__ import annotations

import asyncio

import pytest

from proxy.net.message_box import Mailbox, MailboxClosedError


async def test_items_come_out_in_order_then_the_close_reason() -> None:
    box: Mailbox[int] = Mailbox(limit=3)
    assert box.put(1) and box.put(2)
    box.close(RuntimeError("done"))
    assert [await box.get(), await box.get()] == [1, 2]
    with pytest.raises(RuntimeError, match="done"):
        await box.get()
    assert box.put(3) is False


async def test_a_consumer_that_falls_limit_items_behind_is_cut_off() -> None:
    box: Mailbox[int] = Mailbox(limit=2)
    assert box.put(1) and box.put(2)
    assert box.put(3) is False
    assert box.overflowed and box.closed
    with pytest.raises(MailboxClosedError, match="2 messages behind"):
        await box.get()  # what was queued is dropped: memory stays bounded


async def test_get_waits_for_the_next_item() -> None:
    box: Mailbox[str] = Mailbox(limit=1)
    waiter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    box.put("hello")
    async with asyncio.timeout(1):
        assert await waiter == "hello"
