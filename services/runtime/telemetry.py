"""OpenTelemetry set-up for a process, and trace propagation through NATS message headers.

Spans carry ids and subjects only: no query parameters, no message bodies, no PHI.
Instrumentation (aiohttp server, gRPC client and server, asyncpg) is installed only when an
exporter is configured: without one it wraps every request and query to record nothing, and
costs a tenth of the request path's CPU.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace import SpanKind

_tracer = trace.get_tracer("portal.messaging")
_trace_file: IO[str] | None = None
_enabled = False


def _one_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


def configure(service: str, *, otlp_endpoint: str | None, trace_file: str | None) -> None:
    """Install the tracer provider and the asyncpg instrumentation when spans go somewhere.

    With no exporter configured, spans would be recorded for nobody: nothing is installed, and
    enabled() tells the gRPC channels and servers to leave their interceptors out too.
    """
    global _trace_file, _enabled
    if not otlp_endpoint and not trace_file:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor(capture_parameters=False).instrument()  # type: ignore[no-untyped-call]
    _enabled = True
    provider = TracerProvider(resource=Resource.create({"service.name": f"portal-{service}"}))
    provider.add_span_processor(RedactQueries())
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    if trace_file:
        # One JSON span per line; used by the tests and handy for local debugging.
        _trace_file = open(trace_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        provider.add_span_processor(
            SimpleSpanProcessor(ConsoleSpanExporter(out=_trace_file, formatter=_one_line))
        )
    trace.set_tracer_provider(provider)


class RedactQueries(SpanProcessor):
    """Drop query strings from URL attributes: a search like ?q=<name> is PHI."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for key in ("http.target", "http.url", "url.full"):
            value = (span.attributes or {}).get(key)
            if isinstance(value, str) and "?" in value:
                span.set_attribute(key, value.split("?", 1)[0])
        if (span.attributes or {}).get("url.query"):
            span.set_attribute("url.query", "")


def enabled() -> bool:
    """Whether configure() installed an exporter (so calls and queries should make spans)."""
    return _enabled


def instrument_aiohttp_server() -> None:
    """Server spans for every aiohttp application created after this call (when enabled)."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

    AioHttpServerInstrumentor().instrument()


def grpc_server_interceptors() -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    """Server spans for gRPC handlers (when enabled)."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]  # type: ignore[no-untyped-call]


def grpc_client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Client spans and trace context in metadata for outgoing gRPC calls (when enabled)."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]


def shutdown() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def current_headers() -> dict[str, str]:
    """The W3C trace headers of the current span (empty when there is none)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def publish_span(subject: str, parent: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """A PRODUCER span under `parent`; yields the headers to send with the message."""
    ctx = propagate.extract(dict(parent))
    with _tracer.start_as_current_span(
        f"{subject} publish",
        context=ctx,
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "nats", "messaging.destination.name": subject},
    ):
        yield current_headers()


@contextmanager
def consume_span(subject: str, headers: Mapping[str, str] | None) -> Iterator[None]:
    """A CONSUMER span continuing the trace that arrived in the message headers."""
    ctx = propagate.extract(dict(headers or {}))
    with _tracer.start_as_current_span(
        f"{subject} process",
        context=ctx,
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "nats", "messaging.destination.name": subject},
    ):
        yield
