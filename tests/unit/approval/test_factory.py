"""create_approval_book builds the configured backend (nothing connects until start())."""

from __future__ import annotations

from proxy.approval.book import ApprovalBook
from proxy.approval.factory import create_approval_book
from proxy.approval.redis_book import RedisApprovalBook
from proxy.config import ApprovalConfig


def test_memory_backend_keeps_the_pending_cap() -> None:
    book = create_approval_book(ApprovalConfig(max_pending=7))
    assert type(book) is ApprovalBook and book.max_pending == 7


async def test_redis_backend_uses_the_configured_url_and_prefix() -> None:
    config = ApprovalConfig(backend="redis", redis_url="redis://redis.invalid:6390/3", key_prefix="t:", max_pending=9)
    book = create_approval_book(config)
    assert isinstance(book, RedisApprovalBook) and book.max_pending == 9
    assert book.channel == "t:decisions"
    kwargs = book.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.invalid", 6390, 3)
    await book.client.aclose()
