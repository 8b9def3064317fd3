"""What stages (and the admin app) are built with: the shared objects, made once at startup and handed over."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from proxy.approval.book import ApprovalBook
from proxy.approval.notifier import WebhookNotifier
from proxy.audit import AuditTrail
from proxy.auth.authenticator import Authenticator
from proxy.cache.controller import ResponseCache
from proxy.catalog import ToolCatalog
from proxy.config import Config
from proxy.pipeline import Readiness
from proxy.telemetry.metrics import SidecarMetrics
from proxy.telemetry.setup import Telemetry
from proxy.tools.guard import ToolPins
from proxy.upstream import Upstream


@dataclass(frozen=True, slots=True)
class Deps:
    """A frozen record: a stage takes what it needs from here in `from_config`, never a global or another stage.
    An optional object is None when its feature is off."""

    config: Config
    upstream: Upstream
    catalog: ToolCatalog  # the sidecar's own view of the upstream's tools
    approvals: ApprovalBook  # pending calls; the admin app lists and decides them
    telemetry: Telemetry = field(default_factory=Telemetry.disabled)  # tracer, meter, /metrics reader
    readiness: Readiness = field(default_factory=Readiness)  # the checks behind /readyz
    authenticator: Authenticator | None = None  # also asked by the legacy GET /sse handler
    audit: AuditTrail | None = None  # also records the legacy GET /sse handler's refusals
    cache: ResponseCache | None = None  # the admin app purges it and reads its stats
    pins: ToolPins | None = None  # the reviewed tools lock and the drifts seen (tools.lock_file); /readyz reads it
    notifier: WebhookNotifier | None = None  # approval webhooks; the admin app checks their one-time links
    clock: Callable[[], float] = time.monotonic

    @property
    def metrics(self) -> SidecarMetrics:
        """Always usable (no-op when telemetry is off): `deps.metrics.count("policy_reload_failures")`."""
        return self.telemetry.metrics
