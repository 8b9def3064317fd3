"""The sidecar's spans, recorded as plain data and handed to span processors as finished ReadableSpans.

The SDK's Tracer builds a Span object per span (a lock, BoundedAttributes validating each attribute, event and link
lists, a ReadableSpan copy when it ends): about 30 us per span here, two per call, on the event loop. The sidecar's
spans have a fixed shape (attributes come from semconv: str, int, float, bool or tuples of str; events only where a
tool drifted from its lock), so this
recorder keeps what the SDK would keep and nothing more: the SpanContext is decided as the Tracer decides it
(ParentBased sampling around the SDK's root sampler, the SDK id generator, W3C random-trace-id flag, the parent's
tracestate), attributes stay a dict, and `end()` builds one ReadableSpan (the SDK's public constructor) for the
processors' `on_end`: a FinishedSpan, which also carries the RecordedSpan, whose plain slots the OTLP encoder reads
instead of a property call per field. The OTEL_SPAN_ATTRIBUTE_* limits apply as in the SDK. Processors do not get
`on_start` (the batch and simple processors ignore it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Sampler, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

UNSET = Status(StatusCode.UNSET)
FLAGS = {(sampled, random_id): TraceFlags((TraceFlags.SAMPLED if sampled else 0)
                                          | (TraceFlags.RANDOM_TRACE_ID if random_id else 0))
         for sampled in (False, True) for random_id in (False, True)}  # (sampled, random trace id) -> flags


class SpanRecorder:
    """Starts spans; `shutdown()` flushes and stops the processors. Sampling is ParentBased(root_sampler) with the
    default delegates: a span with a valid parent (remote or local) follows the parent's sampled flag."""

    def __init__(self, resource: Resource, root_sampler: Sampler, processors: Sequence[SpanProcessor],
                 scope_name: str) -> None:
        self.resource = resource
        self.root_sampler = root_sampler
        # TraceIdRatioBased's own decision, without its SamplingResult and context lookups (the root has no parent).
        self.ratio_bound = root_sampler.bound if type(root_sampler) is TraceIdRatioBased else None
        self.processors = tuple(processors)
        self.scope = InstrumentationScope(scope_name, "")  # no version, as Tracer.get_tracer(name) records it
        self.ids = RandomIdGenerator()
        limits = SpanLimits()  # from OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT and friends, as the TracerProvider reads them
        self.max_attributes = limits.max_span_attributes
        self.max_length = limits.max_span_attribute_length

    def start(self, name: str, kind: SpanKind, attributes: dict[str, Any],
              context: otel_context.Context | None = None, links: Sequence[Link] = ()) -> RecordedSpan:
        """A span whose parent is the span in `context` (the current context when None), as Tracer.start_span."""
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid:  # ParentBased with its default delegates: the parent's decision and tracestate
            trace_id, random_id, state = parent.trace_id, parent.trace_flags.random_trace_id, parent.trace_state
            recording = sampled = parent.trace_flags.sampled
        else:
            parent, trace_id, random_id = None, self.ids.generate_trace_id(), self.ids.is_trace_id_random()
            if self.ratio_bound is not None:
                recording = sampled = trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < self.ratio_bound
                state = None
            else:
                sampling = self.root_sampler.should_sample(context, trace_id, name, kind, attributes, links)
                sampled, recording, state = (sampling.decision.is_sampled(), sampling.decision.is_recording(),
                                             sampling.trace_state)
        span_id = self.ids.generate_span_id()
        span_context = SpanContext(trace_id, span_id, is_remote=False,
                                   trace_flags=FLAGS[bool(sampled), bool(random_id)], trace_state=state)
        return RecordedSpan(self if recording else None, name, kind, span_context, parent, attributes, tuple(links),
                            (trace_id, span_id, state))

    def finish(self, span: RecordedSpan, status: Status) -> None:
        attributes = span.attributes
        if self.max_length is not None or (self.max_attributes is not None and len(attributes) > self.max_attributes):
            attributes = span.attributes = self._limited(attributes)
        span.status = status
        span.end_time = time.time_ns()
        readable = FinishedSpan(
            name=span.name, context=span.context, parent=span.parent, resource=self.resource, attributes=attributes,
            links=span.links, kind=span.kind, status=status, start_time=span.start_time, end_time=span.end_time,
            instrumentation_scope=self.scope, events=span.events)
        readable.recorded = span
        for processor in self.processors:
            processor.on_end(readable)

    def _limited(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """The first max_attributes attributes, strings cut to max_length (as BoundedAttributes keeps them)."""
        kept = dict(list(attributes.items())[:self.max_attributes])
        if self.max_length is not None:
            for key, value in kept.items():
                if isinstance(value, str):
                    kept[key] = value[:self.max_length]
                elif isinstance(value, tuple):
                    kept[key] = tuple(item[:self.max_length] if isinstance(item, str) else item for item in value)
        return kept

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()


class FinishedSpan(ReadableSpan):
    """The ReadableSpan of a RecordedSpan (`recorded`, with the same fields) once it ended."""

    recorded: RecordedSpan


class RecordedSpan:
    """One started span: its context for propagation, its attributes until it ends. Not recording (sampled out):
    it still has a context, and `end()` does nothing. `ids` are the context's (trace id, span id, trace state),
    `status` and `end_time` are set when it ends."""

    __slots__ = ("attributes", "context", "end_time", "events", "ids", "kind", "links", "name", "parent",
                 "recorder", "start_time", "status")

    def __init__(self, recorder: SpanRecorder | None, name: str, kind: SpanKind, context: SpanContext,
                 parent: SpanContext | None, attributes: dict[str, Any], links: tuple[Link, ...],
                 ids: tuple[int, int, TraceState]) -> None:
        self.recorder = recorder
        self.ids = ids
        self.name = name
        self.kind = kind
        self.context = context
        self.parent = parent
        self.attributes = attributes
        self.links = links
        self.events: tuple[Event, ...] = ()  # rare (a tool drifting from its lock): a tuple, none by default
        self.start_time = time.time_ns()

    def add_event(self, name: str, attributes: dict[str, Any]) -> None:
        if self.recorder is not None:
            self.events = (*self.events, Event(name, attributes, time.time_ns()))

    def end(self, attributes: dict[str, Any], error_description: str | None = None, error: bool = False) -> None:
        """Ends the span with more attributes; `error` sets the ERROR status (with its description)."""
        if self.recorder is None:
            return
        self.attributes.update(attributes)
        self.recorder.finish(self, Status(StatusCode.ERROR, error_description) if error else UNSET)
        self.recorder = None  # ended once

    def in_context(self, parent: otel_context.Context | None = None) -> otel_context.Context:
        """`parent` (or the current context) with this span as the current span, for children and log lines."""
        return trace.set_span_in_context(trace.NonRecordingSpan(self.context), parent)
