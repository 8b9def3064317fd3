"""Build the configured approval book: pending calls in this process, or in Redis shared by every worker."""

from __future__ import annotations

from proxy.approval.book import ApprovalBook
from proxy.approval.redis_book import RedisApprovalBook
from proxy.config import ApprovalConfig


def create_approval_book(config: ApprovalConfig) -> ApprovalBook:
    if config.backend == "redis":
        return RedisApprovalBook(config)
    return ApprovalBook(max_pending=config.max_pending, timeout_seconds=config.timeout_seconds)
