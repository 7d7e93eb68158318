"""OpenTelemetry SDK providers with in-memory readers, for the telemetry tests (the ``otel`` fixture).

The providers are passed to reqcc as ``meter_provider=`` / ``tracer_provider=``; the global
providers are never set.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from reqcc.telemetry import Telemetry, create_telemetry
from reqcc.testing import FakeClock


class Otel:
    """A meter provider and a tracer provider that keep what they record in memory."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.clock = FakeClock(100.0)  # only its monotonic clock is read

    def shutdown(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()

    def telemetry(self, client_id: str = "client-1") -> Telemetry:
        """reqcc's telemetry for ``client_id`` on these providers and :attr:`clock`."""
        return create_telemetry(
            client_id,
            meter_provider=self.meter_provider,
            tracer_provider=self.tracer_provider,
            monotonic=self.clock.monotonic,
        )

    def points(self, name: str) -> list[Any]:
        """The data points of every metric called ``name``."""
        data = self.reader.get_metrics_data()
        return [
            point
            for resource in (data.resource_metrics if data else ())
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def requests_by(self) -> dict[tuple[str, str | None], int]:
        """``reqcc.token.requests`` by (outcome, error.type)."""
        return {
            (p.attributes["outcome"], p.attributes.get("error.type")): p.value
            for p in self.points("reqcc.token.requests")
            if p.value
        }

    def total(self, name: str) -> int:
        return sum(getattr(p, "value", None) or getattr(p, "count", 0) for p in self.points(name))

    def recorded_text(self) -> str:
        """Everything recorded (metrics as JSON, span names, attributes, statuses, events) as text."""
        data = self.reader.get_metrics_data()
        parts = [data.to_json() if data else ""]
        for span in self.exporter.get_finished_spans():
            parts += [span.name, repr(dict(span.attributes or {})), repr(span.status.description)]
            parts += [repr(dict(e.attributes or {})) for e in span.events]
        return "\n".join(parts)
