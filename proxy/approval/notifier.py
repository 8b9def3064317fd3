"""Webhook notifications of approvals: a JSON POST when a call starts waiting and when it is decided.

Signed (proxy.approval.signing), queued in a bounded queue (a full queue drops the new notification and counts it),
sent one at a time by one task, retried with doubling backoff; a notification that still failed after its last
attempt is counted. Neither ever delays or fails the call itself: notification is best effort, the book decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from proxy.approval.book import Outcome, PendingApproval
from proxy.approval.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    LinkClaim,
    make_link_token,
    read_link_token,
    sign_webhook,
)
from proxy.config import MIN_HMAC_SECRET_BYTES, WebhookConfig
from proxy.net.json_poster import JsonPoster
from proxy.secret_files import SecretFile

log = structlog.get_logger("proxy.approval")

LINK_PATH = "/approvals/link/"


def _key(secret: SecretFile) -> bytes:
    key = secret.read_bytes().rstrip(b"\r\n")
    if len(key) < MIN_HMAC_SECRET_BYTES:
        raise ValueError(f"{secret.path}: a signing key needs at least {MIN_HMAC_SECRET_BYTES} bytes")
    return key


class LinkSigner:
    """One-time approve/deny links for a waiting call, and their check when one is followed."""

    def __init__(self, base_url: str, secret_file: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = SecretFile(secret_file)
        _key(self.secret)  # a short key fails at startup

    def links(self, approval: PendingApproval) -> dict[str, str]:
        key, digest = _key(self.secret), approval.arguments_hash or ""
        return {verdict: self.base_url + LINK_PATH + make_link_token(
                    key, LinkClaim(approval.id, digest, verdict == "approve", approval.expires))
                for verdict in ("approve", "deny")}

    def read(self, token: str) -> LinkClaim:
        """Raises LinkRefused for a forged, altered or expired token."""
        return read_link_token(_key(self.secret), token)


class WebhookNotifier:
    def __init__(self, config: WebhookConfig, count: Callable[[str, int], None]) -> None:
        self.config = config
        self.secret = SecretFile(config.secret_file)
        _key(self.secret)
        self.links = LinkSigner(config.links_base_url, config.links_secret_file) \
            if config.links_base_url and config.links_secret_file else None
        self._count = count
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=config.max_queue)
        self._poster = JsonPoster(config.timeout_seconds)
        self._worker: asyncio.Task[None] | None = None
        self.delivered = self.failed = self.dropped = 0

    @classmethod
    def from_config(cls, config: WebhookConfig | None, count: Callable[[str, int], None]) -> WebhookNotifier | None:
        return cls(config, count) if config is not None else None

    async def start(self) -> None:
        await self._poster.start()
        self._worker = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self._poster.close()

    def pending(self, approval: PendingApproval) -> None:
        event: dict[str, Any] = {"type": "approval.pending", "approval": approval.listing()}
        if self.links is not None:
            event["links"] = self.links.links(approval)
        self._enqueue(event)

    def decided(self, approval: PendingApproval, outcome: Outcome) -> None:
        self._enqueue({"type": "approval.decided", "approval": approval.listing(),
                       "decision": {"approved": outcome.approved, "note": outcome.note,
                                    "approver": outcome.approver}})

    async def readiness(self) -> tuple[bool, str]:
        """Always ready (a chat outage must not take the sidecar out of rotation); the counts tell the story."""
        return True, (f"webhook: {self.delivered} delivered, {self.failed} failed, {self.dropped} dropped, "
                      f"{self._queue.qsize()} queued")

    def _enqueue(self, event: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            self._count("webhook_drops", 1)
            log.warning("webhook.dropped", type=event["type"], approval_id=event["approval"]["id"])

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            if await self._deliver(self._body(event)):
                self.delivered += 1
            else:
                self.failed += 1
                self._count("webhook_failures", 1)
                log.warning("webhook.failed", type=event["type"], approval_id=event["approval"]["id"])

    async def _deliver(self, body: bytes) -> bool:
        delay = self.config.backoff_seconds
        for attempt in range(1, self.config.max_attempts + 1):
            timestamp = int(time.time())
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(timestamp),
                       SIGNATURE_HEADER: sign_webhook(_key(self.secret), timestamp, body)}
            problem = await self._poster.post(self.config.url, body, headers)
            if problem is None:
                return True
            log.info("webhook.retry", attempt=attempt, problem=problem)
            if attempt < self.config.max_attempts:
                await asyncio.sleep(delay)
                delay *= 2
        return False

    def _body(self, event: dict[str, Any]) -> bytes:
        return orjson.dumps(slack_message(event) if self.config.format == "slack" else event)


def slack_message(event: dict[str, Any]) -> dict[str, Any]:
    """A Slack-compatible message (incoming webhooks): a text fallback, the details, and link buttons."""
    approval = event["approval"]
    tool = approval.get("target") or approval.get("method")
    if event["type"] == "approval.pending":
        text = f"{approval.get('principal')} wants to call `{tool}`: approval {approval['id']} waits until " \
               f"{approval['expires']}"
    else:
        decision = event["decision"]
        verdict = "approved" if decision["approved"] else "denied"
        text = f"Approval {approval['id']} for `{tool}` was {verdict}" + \
               (f" by {decision['approver']}" if decision.get("approver") else "") + \
               (f": {decision['note']}" if decision.get("note") else "")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if event["type"] == "approval.pending":
        details = orjson.dumps({"arguments": approval.get("arguments"), "reasons": approval.get("reasons")},
                               option=orjson.OPT_INDENT_2).decode()
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{details}```"}})
    if event.get("links"):
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": verdict.title()}, "url": url,
             **({"style": "primary"} if verdict == "approve" else {"style": "danger"})}
            for verdict, url in event["links"].items()]})
    return {"text": text, "blocks": blocks}
