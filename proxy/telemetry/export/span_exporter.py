"""The OTLP/HTTP span exporter: batches written by otlp_wire, POSTed as the OTLP exporter would post them.

Same endpoint, headers, timeout, compression and TLS variables (OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION,
_CERTIFICATE, _CLIENT_CERTIFICATE, _CLIENT_KEY), and the same delivery rules: 2xx/3xx is success; 429, 502, 503,
504 and connection errors are retried with exponential backoff (2^n s, +-20% jitter, or the server's Retry-After)
up to 6 attempts within the timeout; a connection error is first retried at once (a stale pooled connection);
shutdown stops the waiting. Only the encoding differs (see otlp_wire); it runs on the batch processor's thread.

A POST through `Session.post` re-reads the environment (proxies, CA bundle, netrc), merges cookies and hooks and
prepares the request again: about 0.8 ms of CPU per export here, more than encoding a hundred spans. The request is
prepared once instead, the environment settings merged once, and each export goes straight to the session's
adapter (the same urllib3 pool, TLS and proxy handling, and exceptions); cookies the collector sets are still kept.
"""

from __future__ import annotations

import gzip
import logging
import math
import random
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime

import requests
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from proxy import __version__
from proxy.telemetry.export.otlp_wire import TraceRequestEncoder

log = logging.getLogger(__name__)

COMPRESSIONS = ("none", "gzip", "deflate")
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 6
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # as the OTLP exporter: a larger batch is dropped, not sent
CONNECTION_ERRORS = (requests.ConnectionError, requests.Timeout)  # includes SSL and proxy errors
BASE_HEADERS = {"content-type": "application/x-protobuf",
                "user-agent": f"mcp-sidecar/{__version__}"}


def _env(env: Mapping[str, str], name: str) -> str | None:
    """OTEL_EXPORTER_OTLP_TRACES_<name>, else OTEL_EXPORTER_OTLP_<name>."""
    return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}") or None


def compression_from(env: Mapping[str, str]) -> str:
    value = (_env(env, "COMPRESSION") or "none").strip().lower()
    if value not in COMPRESSIONS:
        log.warning("Unsupported compression type: %s", value)
        return "none"
    return value


class OtlpSpanExporter(SpanExporter):
    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout_seconds: float = 10.0,
                 compression: str = "none", verify: bool | str = True,
                 cert: str | tuple[str, str] | None = None) -> None:
        self.endpoint = endpoint
        self.timeout_seconds = timeout_seconds
        self.compression = compression
        self.headers = {**BASE_HEADERS, **{name.lower(): value for name, value in headers.items()}}
        if compression != "none":
            self.headers.setdefault("content-encoding", compression)
        self._encoder = TraceRequestEncoder()
        self._session = requests.Session()
        self._session.verify = verify
        if cert is not None:
            self._session.cert = cert
        self._adapter = self._session.get_adapter(endpoint)
        # What Session.post resolves per request: env proxies, REQUESTS_CA_BUNDLE, the session's TLS files.
        self._send_settings = self._session.merge_environment_settings(endpoint, {}, None, None, None)
        self._prepared = self._prepare()
        self._stopped = threading.Event()

    def _prepare(self) -> requests.PreparedRequest:
        """The POST without its body, with what the session adds (netrc auth, the collector's cookies)."""
        return self._session.prepare_request(requests.Request("POST", self.endpoint, headers=self.headers))

    @classmethod
    def from_env(cls, endpoint: str, headers: Mapping[str, str], env: Mapping[str, str],
                 timeout_seconds: float = 10.0) -> OtlpSpanExporter:
        """Compression and TLS files from the standard OTLP variables (headers are resolved by the caller)."""
        key, certificate = _env(env, "CLIENT_KEY"), _env(env, "CLIENT_CERTIFICATE")
        return cls(endpoint, headers, timeout_seconds, compression_from(env), verify=_env(env, "CERTIFICATE") or True,
                   cert=(certificate, key) if certificate and key else certificate)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stopped.is_set():
            log.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        try:
            body = self._encoder.encode(spans)
        except Exception:  # a bug in the encoder must not end the batch processor's thread
            log.exception("Failed to encode span batch")
            return SpanExportResult.FAILURE
        if len(body) > MAX_REQUEST_BYTES:
            log.warning("Dropping span batch: serialized size %d bytes exceeds %d", len(body), MAX_REQUEST_BYTES)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if self.deliver(self._compress(body)) else SpanExportResult.FAILURE

    def deliver(self, body: bytes) -> bool:
        """POST with retries until success, a permanent failure, the deadline or shutdown."""
        deadline = time.monotonic() + self.timeout_seconds
        for attempt in range(MAX_ATTEMPTS):
            response, error = self._post(body, deadline)
            if response is not None and 200 <= response.status_code < 400:
                return True
            status, reason = (response.status_code, response.reason) if response is not None else (None, None)
            if not _transient(response, error):
                log.error("Failed to export spans batch code: %s, reason: %s", status, reason or error or "unknown")
                return False
            backoff = _retry_after(response) if response is not None else None
            if backoff is None:
                backoff = 2 ** attempt * random.uniform(0.8, 1.2)
            if attempt + 1 == MAX_ATTEMPTS or backoff > deadline - time.monotonic() or self._stopped.is_set():
                log.error("Failed to export spans batch due to timeout, max retries or shutdown.")
                return False
            log.warning("Transient error %s encountered while exporting spans batch, retrying in %.2fs.",
                        reason or error, backoff)
            if self._stopped.wait(backoff):
                log.warning("Shutdown in progress, aborting retry.")
                return False
        return False

    def _post(self, body: bytes, deadline: float) -> tuple[requests.Response | None, Exception | None]:
        response, error = self._request(body, max(deadline - time.monotonic(), 0.0))
        if isinstance(error, CONNECTION_ERRORS) and deadline - time.monotonic() > 0:
            response, error = self._request(body, deadline - time.monotonic())  # at once: a stale connection
        return response, error

    def _request(self, body: bytes, timeout: float) -> tuple[requests.Response | None, Exception | None]:
        request = self._prepared.copy()
        request.body = body
        request.headers["Content-Length"] = str(len(body))
        try:
            response = self._adapter.send(request, timeout=timeout, **self._send_settings)
            response.content  # noqa: B018 (read to the end: the connection goes back to the pool)
        except Exception as error:  # reported by deliver(); the thread must go on
            return None, error
        if "set-cookie" in response.headers:  # as Session.send: keep them for the next requests
            requests.cookies.extract_cookies_to_jar(self._session.cookies, request, response.raw)
            self._prepared = self._prepare()
        return response, None

    def _compress(self, body: bytes) -> bytes:
        if self.compression == "gzip":
            return gzip.compress(body)
        if self.compression == "deflate":
            return zlib.compress(body)
        return body

    def shutdown(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._session.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing is buffered here


def _transient(response: requests.Response | None, error: Exception | None) -> bool:
    """Worth retrying: a retryable status, or no answer because the connection failed or timed out."""
    if response is not None:
        return response.status_code in RETRYABLE_STATUS
    return isinstance(error, CONNECTION_ERRORS)


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (RFC 9110: delay-seconds or an HTTP-date), if the server sent a usable one."""
    value = (response.headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return max(moment.timestamp() - time.time(), 0.0)
    return max(seconds, 0.0) if math.isfinite(seconds) else None
