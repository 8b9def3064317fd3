"""The approval book in Redis, shared by every worker and replica: any of them lists and decides any pending call.

Keys (under `key_prefix`): `pending`, a sorted set of approval ids scored by their deadline (ms, Redis clock);
`item:<id>`, what an approver sees; `decision:<id>`, a decision kept for its waiter. A decision is also published
on `decisions`, so the sidecar holding the call learns of it at once; a waiting call also reads its decision key every
`recheck_seconds`, which covers a message missed while the subscription reconnected. Each step that must not race
(open under the limit, decide once, expire unless decided) is one Lua script.

Redis down fails closed: a call that needs approval is refused (`ApprovalUnavailableError`), a decision cannot be given
(the admin listener answers 503), and a waiting call whose decision cannot be read times out as a denial.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import redis.asyncio as redis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from proxy.approval.book import ApprovalBook, Decided, Outcome, PendingApproval, timed_out
from proxy.config import ApprovalConfig
from proxy.errors import ApprovalUnavailableError

log = structlog.get_logger("proxy.approval")

REDIS_FAILURES = (RedisError, OSError, TimeoutError)
UNANSWERED = (RedisTimeoutError, TimeoutError)  # the command may have run all the same
DECISION_KEEP_MS = 60_000  # a decision outlives its message this long, for a waiter that missed the message
RESUBSCRIBE_SECONDS = 1.0

_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""
# KEYS: pending, item. ARGV: id, ttl ms, max pending, item JSON. 1 when opened, 0 when the book is full.
# `pending` lives as long as its last deadline: the ids of calls whose sidecar died go with it.
OPEN = _NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[2])
return 1
"""
# KEYS: pending, item, decision. ARGV: id, decision JSON, keep ms, channel, arguments hash. 1 when decided, 0 when
# not pending, -1 when pending with other arguments.
DECIDE = _NOW_MS + """
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not deadline or tonumber(deadline) <= now then return 0 end
local item = redis.call('GET', KEYS[2])
if not item then return 0 end
if cjson.decode(item)['arguments_hash'] ~= ARGV[5] then return -1 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1
"""
# KEYS: pending. ARGV: the item key prefix. What approvers see of every approval still pending (false: just gone).
LIST = _NOW_MS + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
local items = {}
for i, id in ipairs(ids) do items[i] = redis.call('GET', ARGV[1] .. id) or false end
return items
"""
# KEYS: pending, item, decision. ARGV: id. Ends a wait: nil when it was still undecided (now it cannot be decided),
# else the decision that came first.
CLOSE = """
local undecided = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
local decision = redis.call('GET', KEYS[3])
redis.call('DEL', KEYS[3])
if undecided == 1 then return false end
return decision
"""


class RedisApprovalBook(ApprovalBook):
    """`_pending` holds only the calls waiting in this process; the book itself is in Redis."""

    def __init__(self, config: ApprovalConfig) -> None:
        super().__init__(max_pending=config.max_pending, timeout_seconds=config.timeout_seconds)
        self.config = config
        self.prefix = config.key_prefix
        self.channel = self.prefix + "decisions"
        timeout = config.redis_timeout_seconds
        # Commands: one short attempt, then the failure is the caller's to handle (fail closed).
        self.client = redis.Redis.from_url(config.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           retry=Retry(NoBackoff(), 0))
        self._open = self.client.register_script(OPEN)
        self._decide = self.client.register_script(DECIDE)
        self._close = self.client.register_script(CLOSE)
        self._list = self.client.register_script(LIST)
        self._listener: asyncio.Task[None] | None = None
        self._chores: set[asyncio.Task[Any]] = set()

    def _keys(self, approval_id: str) -> list[str]:
        return [self.prefix + "pending", f"{self.prefix}item:{approval_id}", f"{self.prefix}decision:{approval_id}"]

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._chores:
            _, late = await asyncio.wait(self._chores, timeout=self.config.redis_timeout_seconds * 2)
            for chore in late:  # not left running on a closed client
                chore.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.client.aclose()

    async def open(self, summary: dict[str, Any]) -> PendingApproval | None:
        approval = PendingApproval.new(summary, time.time(), self.config.timeout_seconds)
        ttl_ms = max(1, int(self.config.timeout_seconds * 1000))
        item = orjson.dumps(approval.listing())
        try:
            opened = await self._open(keys=self._keys(approval.id)[:2], args=[approval.id, ttl_ms, self.max_pending,
                                                                              item])
        except asyncio.CancelledError:
            self._chore(self._forget(approval.id))  # opened perhaps, and nobody would wait for it: leave none behind
            raise
        except REDIS_FAILURES as error:
            if isinstance(error, UNANSWERED):  # the same: the script may have run before the timeout
                self._chore(self._forget(approval.id))
            _log_unreachable("open", error)
            raise ApprovalUnavailableError(
                "Approval cannot be requested right now: the approval store is unreachable") from None
        if not opened:
            return None
        self._pending[approval.id] = approval
        return approval

    async def wait(self, approval: PendingApproval, within_seconds: float) -> Outcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        try:
            while (left := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(min(left, self.config.recheck_seconds)):
                        return await asyncio.shield(approval.outcome)
                except TimeoutError:
                    decision = _delivered(approval) or await self._stored_decision(approval.id)
                    if decision is not None:
                        return decision
            return await self._expire(approval, within_seconds)
        finally:
            if self._pending.pop(approval.id, None) is not None:
                self._chore(self._forget(approval.id))

    def withdraw(self, approval: PendingApproval) -> None:
        if self._pending.pop(approval.id, None) is not None:
            self._chore(self._forget(approval.id))

    async def decide(self, approval_id: str, arguments_hash: str, outcome: Outcome) -> Decided:
        decision = orjson.dumps({"id": approval_id, "approved": outcome.approved, "note": outcome.note,
                                 "by": outcome.approver})
        try:
            done = await self._decide(keys=self._keys(approval_id),
                                      args=[approval_id, decision, DECISION_KEEP_MS, self.channel, arguments_hash])
        except REDIS_FAILURES as error:
            _log_unreachable("decide", error)
            raise ApprovalUnavailableError(
                "The approval store is unreachable; the decision may not have been recorded") from None
        return Decided.DECIDED if done == 1 else Decided.MISMATCH if done == -1 else Decided.UNKNOWN

    async def pending(self) -> list[dict[str, Any]]:
        try:
            items = await self._list(keys=[self.prefix + "pending"], args=[self.prefix + "item:"])
        except REDIS_FAILURES as error:
            _log_unreachable("list", error)
            raise ApprovalUnavailableError("The approval store is unreachable") from None
        return [orjson.loads(item) for item in items if item]

    async def get(self, approval_id: str) -> dict[str, Any] | None:
        try:
            item = await self.client.get(f"{self.prefix}item:{approval_id}")
        except REDIS_FAILURES as error:
            _log_unreachable("get", error)
            raise ApprovalUnavailableError("The approval store is unreachable") from None
        return orjson.loads(item) if item else None

    async def readiness(self) -> tuple[bool, str]:
        """Ready either way: only calls that need approval depend on Redis, and those are refused while it is away."""
        try:
            await self.client.ping()
        except REDIS_FAILURES as error:
            return True, f"redis unreachable ({error.__class__.__name__}); calls that need approval are refused"
        return True, "redis reachable"

    async def _expire(self, approval: PendingApproval, within_seconds: float) -> Outcome:
        """The wait is over: undecided becomes a denial, unless a decision beat the deadline."""
        try:
            decision = await self._close(keys=self._keys(approval.id), args=[approval.id])
        except REDIS_FAILURES as error:
            _log_unreachable("expire", error)
            return _delivered(approval) or timed_out(within_seconds)  # a published decision was a recorded one
        self._pending.pop(approval.id, None)  # closed in Redis already: nothing left to forget
        return _outcome(decision) if decision is not None else timed_out(within_seconds)

    async def _stored_decision(self, approval_id: str) -> Outcome | None:
        try:
            decision = await self.client.get(f"{self.prefix}decision:{approval_id}")
        except REDIS_FAILURES:
            return None  # the wait goes on; its end is a denial if Redis stays away
        return _outcome(decision) if decision is not None else None

    async def _forget(self, approval_id: str) -> None:
        """Best effort: what is not removed here expires with its deadline."""
        try:
            await self._close(keys=self._keys(approval_id), args=[approval_id])
        except REDIS_FAILURES as error:
            log.warning("approval.cleanup_failed", error=str(error) or error.__class__.__name__)

    def _chore(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _listen(self) -> None:
        """Deliver published decisions to the calls waiting here, resubscribing after a lost connection."""
        subscribed = True  # so that a first failure is logged
        while True:
            subscriber = redis.Redis.from_url(self.config.redis_url, health_check_interval=30,
                                              socket_connect_timeout=self.config.redis_timeout_seconds)
            pubsub = subscriber.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._deliver(message["data"])
                    elif message["type"] == "subscribe":  # confirmed, not just sent (and again after a reconnect)
                        if not subscribed:
                            log.info("approval.subscription_restored")
                        subscribed = True
                        await self._recheck_waiting()  # decisions given while there was no subscription
            except REDIS_FAILURES as error:
                if subscribed:
                    log.warning("approval.subscription_lost", error=str(error) or error.__class__.__name__)
                subscribed = False
            finally:
                await asyncio.shield(_quietly_close(pubsub, subscriber))
            await asyncio.sleep(RESUBSCRIBE_SECONDS)

    def _deliver(self, data: bytes) -> None:
        try:
            decision = orjson.loads(data)
            approval = self._pending.get(decision["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("approval.bad_decision_message", size=len(data))
            return
        if approval is not None and not approval.outcome.done():
            approval.outcome.set_result(_outcome(data))

    async def _recheck_waiting(self) -> None:
        for approval_id, approval in list(self._pending.items()):
            decision = await self._stored_decision(approval_id)
            if decision is not None and not approval.outcome.done():
                approval.outcome.set_result(decision)


def _log_unreachable(step: str, error: BaseException) -> None:
    log.error("approval.redis_unreachable", step=step, error=str(error) or error.__class__.__name__)


def _delivered(approval: PendingApproval) -> Outcome | None:
    return approval.outcome.result() if approval.outcome.done() else None


def _outcome(stored: bytes) -> Outcome:
    decision = orjson.loads(stored)
    approver = decision.get("by")
    return Outcome(bool(decision.get("approved")), str(decision.get("note", "")),
                   str(approver) if approver is not None else None)


async def _quietly_close(pubsub: Any, subscriber: redis.Redis) -> None:
    try:
        await pubsub.aclose()
        await subscriber.aclose()
    except REDIS_FAILURES:
        pass
