"""Optional OpenTelemetry metrics and traces of token requests.

With ``opentelemetry-api`` installed (``pip install reqcc[otel]``), :func:`create_telemetry`
returns an object that records, for one client:

- ``reqcc.token.requests`` (counter): one per HTTP token request, with ``outcome``
  (``success`` or ``error``) and, on error, ``error.type`` (the error code when RFC 6749,
  RFC 6750 or RFC 9449 registers it, else the exception's class name);
- ``reqcc.token.request.duration`` (histogram, seconds): how long each one took, with the
  same attributes;
- ``reqcc.token.rejections`` (counter): tokens retired after the API answered 401;
- ``reqcc.token.wait.duration`` (histogram, seconds): how long a caller waited for a
  token, recorded only when it had to wait (the caller that led the fetch included);

every point with ``reqcc.client_id``; and one span ``reqcc token request`` (kind CLIENT)
per HTTP token request, a child of whatever span is current, with status ERROR and
``error.type`` on failure. No attribute, event or span name carries a secret, a token,
an assertion or a proof; exceptions are not recorded on the span (their messages quote
server answers).

Without the package, :func:`create_telemetry` returns a :class:`Telemetry`, whose
methods do nothing. Nothing here imports OpenTelemetry at module level. The meter and
tracer come from the global providers unless others are passed (tests pass their own).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import REGISTERED_ERROR_CODES, OAuthProviderError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from opentelemetry.metrics import Histogram, Meter, MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = [
    "Telemetry",
    "create_telemetry",
    "error_type",
    "INSTRUMENTATION_NAME",
    "SPAN_NAME",
    "DURATION_BUCKETS",
]

#: The instrumentation scope of reqcc's meter and tracer.
INSTRUMENTATION_NAME = "reqcc"
#: The name of the span around one HTTP token request.
SPAN_NAME = "reqcc token request"
#: Advisory histogram bucket boundaries in seconds (those of OpenTelemetry's HTTP
#: client duration): the SDK's defaults are meant for milliseconds.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)

def error_type(exc: BaseException) -> str:
    """Return the ``error.type`` of a failed token request: a registered code or the class name.

    Only the codes of RFC 6749, RFC 6750 and RFC 9449
    (:data:`~reqcc.errors.REGISTERED_ERROR_CODES`) go into a metric attribute; any other
    becomes the exception's class name, so a server answering a new code each time cannot
    mint a new metric series per request (contract item 34).
    """
    if isinstance(exc, OAuthProviderError) and exc.error in REGISTERED_ERROR_CODES:
        return exc.error
    return type(exc).__name__


class Telemetry:
    """What a manager reports about its token requests; this base class records nothing.

    It is what :func:`create_telemetry` returns when OpenTelemetry is not installed, and
    what a manager uses when telemetry is turned off. Every method is cheap and safe to
    call from any thread.
    """

    #: Whether anything is recorded.
    enabled: bool = False

    def token_request(self, url: str | None = None) -> AbstractContextManager[None]:
        """Return a context manager to put around exactly one HTTP token request.

        On a normal exit the request counts as a success; an exception leaving the block
        counts as an error (its ``error.type`` is :func:`error_type`) and propagates.

        :param url: the token endpoint, for the span's ``server.address`` / ``server.port``.
        """
        return contextlib.nullcontext()

    def rejection(self) -> None:
        """Count one token retired because the API answered 401 with it."""

    def waited(self, seconds: float) -> None:
        """Record that a caller waited ``seconds`` for a token (call only when it had to wait)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(enabled={self.enabled})"


def create_telemetry(
    client_id: str,
    *,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    monotonic: Callable[[], float] = time.perf_counter,
) -> Telemetry:
    """Return the telemetry of one client: OpenTelemetry's if installed, else a no-op.

    :param client_id: the client's id, put on every point and span as ``reqcc.client_id``.
    :param meter_provider: where the instruments come from (default: the global provider,
        which forwards to whatever provider the application installs, even later).
    :param tracer_provider: where the spans go (default: the global provider).
    :param monotonic: the clock that times token requests, in seconds.
    """
    try:
        from opentelemetry import metrics, trace  # noqa: F401 - the probe for the extra
    except ImportError:
        return Telemetry()
    return _OpenTelemetry(
        client_id, meter_provider=meter_provider, tracer_provider=tracer_provider, monotonic=monotonic
    )


class _OpenTelemetry(Telemetry):
    """:class:`Telemetry` that records with the OpenTelemetry API (``opentelemetry-api``)."""

    enabled = True

    def __init__(
        self,
        client_id: str,
        *,
        meter_provider: MeterProvider | None,
        tracer_provider: TracerProvider | None,
        monotonic: Callable[[], float],
    ) -> None:
        from opentelemetry import metrics, trace

        from ._version import __version__

        self._trace = trace
        self._monotonic = monotonic
        self._attributes: dict[str, str] = {"reqcc.client_id": client_id}
        self._success: dict[str, str] = {**self._attributes, "outcome": "success"}
        meter = metrics.get_meter(INSTRUMENTATION_NAME, __version__, meter_provider=meter_provider)
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__, tracer_provider=tracer_provider)
        self._requests = meter.create_counter(
            "reqcc.token.requests", unit="{request}", description="HTTP token requests sent"
        )
        self._rejections = meter.create_counter(
            "reqcc.token.rejections", unit="{token}", description="Tokens retired after the API answered 401"
        )
        self._request_duration = _histogram(
            meter, "reqcc.token.request.duration", "Duration of HTTP token requests"
        )
        self._wait_duration = _histogram(
            meter, "reqcc.token.wait.duration", "Time a caller waited for a token, when it had to wait"
        )

    @contextlib.contextmanager
    def _token_request(self, url: str | None) -> Iterator[None]:
        trace = self._trace
        attributes: dict[str, Any] = dict(self._attributes)
        if url:
            attributes.update(_server_attributes(url))
        with self._tracer.start_as_current_span(
            SPAN_NAME,
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,  # messages quote server answers; the type is enough
            set_status_on_exception=False,
        ) as span:
            start = self._monotonic()
            try:
                yield
            except Exception as exc:
                kind = error_type(exc)
                span.set_attribute("error.type", kind)
                status_code = getattr(exc, "status_code", None)
                if isinstance(status_code, int):
                    span.set_attribute("http.response.status_code", status_code)
                span.set_status(trace.Status(trace.StatusCode.ERROR, kind))
                point = {**self._attributes, "outcome": "error", "error.type": kind}
                self._requests.add(1, point)
                self._request_duration.record(max(0.0, self._monotonic() - start), point)
                raise
            self._requests.add(1, self._success)
            self._request_duration.record(max(0.0, self._monotonic() - start), self._success)

    def token_request(self, url: str | None = None) -> AbstractContextManager[None]:
        return self._token_request(url)

    def rejection(self) -> None:
        self._rejections.add(1, self._attributes)

    def waited(self, seconds: float) -> None:
        self._wait_duration.record(max(0.0, float(seconds)), self._attributes)


def _histogram(meter: Meter, name: str, description: str) -> Histogram:
    try:
        return meter.create_histogram(
            name, unit="s", description=description, explicit_bucket_boundaries_advisory=DURATION_BUCKETS
        )
    except TypeError:  # opentelemetry-api older than 1.30: no advisory parameter
        return meter.create_histogram(name, unit="s", description=description)


def _server_attributes(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    out: dict[str, Any] = {}
    if parts.hostname:
        out["server.address"] = parts.hostname
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme.lower())
    if port is not None:
        out["server.port"] = port
    return out
