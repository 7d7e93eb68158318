"""OpenTelemetry metrics and spans of token requests: reqcc.telemetry.

Local SDK providers with in-memory readers are passed in; the global providers are never set.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from unittest import mock

import pytest
import requests
from opentelemetry.trace import SpanKind, StatusCode

from reqcc.errors import InvalidClient, OAuthProviderError, TokenResponseError
from reqcc.telemetry import (
    DURATION_BUCKETS,
    SPAN_NAME,
    Telemetry,
    _histogram,
    create_telemetry,
    error_type,
)
from tests.otel_sdk import Otel

SECRET = "s3cr3t-client-secret"
TOKEN = "tok-abcdef-123456"


def test_a_successful_token_request(otel: Otel) -> None:
    telemetry = otel.telemetry()
    assert telemetry.enabled
    with telemetry.token_request("https://as.example/oauth/token"):
        otel.clock.advance(0.25)
    [count] = otel.points("reqcc.token.requests")
    assert count.value == 1
    assert dict(count.attributes) == {"reqcc.client_id": "client-1", "outcome": "success"}
    [duration] = otel.points("reqcc.token.request.duration")
    assert duration.count == 1 and duration.sum == pytest.approx(0.25)
    assert dict(duration.attributes) == {"reqcc.client_id": "client-1", "outcome": "success"}
    assert list(duration.explicit_bounds) == list(DURATION_BUCKETS)
    [span] = otel.spans()
    assert span.name == SPAN_NAME
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "reqcc.client_id": "client-1",
        "server.address": "as.example",
        "server.port": 443,
    }
    assert otel.points("reqcc.token.rejections") == []
    assert otel.points("reqcc.token.wait.duration") == []


def test_the_span_is_a_child_of_the_current_span_and_current_inside(otel: Otel) -> None:
    telemetry = otel.telemetry()
    tracer = otel.tracer_provider.get_tracer("app")
    inner_parent: list[int] = []
    with tracer.start_as_current_span("app work") as parent:
        with telemetry.token_request():
            # what requests' own instrumentation would start here nests under reqcc's span
            with tracer.start_as_current_span("HTTP POST") as http:
                inner_parent.append(http.parent.span_id)  # type: ignore[union-attr]
    spans = {s.name: s for s in otel.spans()}
    ours = spans[SPAN_NAME]
    assert ours.parent is not None and ours.parent.span_id == parent.get_span_context().span_id
    assert inner_parent == [ours.context.span_id]


def test_a_provider_error_counts_as_an_error_with_its_code(otel: Otel) -> None:
    telemetry = otel.telemetry()
    response = requests.Response()
    response.status_code = 401
    with pytest.raises(InvalidClient), telemetry.token_request():
        otel.clock.advance(1.5)
        raise InvalidClient("invalid_client", f"bad secret {SECRET}", response=response)
    [count] = otel.points("reqcc.token.requests")
    expected = {"reqcc.client_id": "client-1", "outcome": "error", "error.type": "invalid_client"}
    assert count.value == 1 and dict(count.attributes) == expected
    [duration] = otel.points("reqcc.token.request.duration")
    assert dict(duration.attributes) == expected and duration.sum == pytest.approx(1.5)
    [span] = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "invalid_client"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "invalid_client"
    assert span.attributes["http.response.status_code"] == 401
    assert list(span.events) == []  # no exception event: its message quotes the server


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.ConnectionError("refused"), "ConnectionError"),
        (requests.ReadTimeout("slow"), "ReadTimeout"),
        (TokenResponseError("not JSON"), "TokenResponseError"),
        (OAuthProviderError("has spaces and " + TOKEN), "OAuthProviderError"),
        (OAuthProviderError("x" * 65), "OAuthProviderError"),
        (OAuthProviderError("slow_down"), "OAuthProviderError"),  # RFC 8628's: not registered here
        (OAuthProviderError("invalid_client"), "invalid_client"),  # RFC 6749
        (OAuthProviderError("invalid_token"), "invalid_token"),  # RFC 6750
        (OAuthProviderError("use_dpop_nonce"), "use_dpop_nonce"),  # RFC 9449
        (OAuthProviderError("Invalid_Client"), "OAuthProviderError"),  # codes are case-sensitive
        (ValueError("boom"), "ValueError"),
    ],
)
def test_error_type(otel: Otel, exc: Exception, kind: str) -> None:
    assert error_type(exc) == kind
    telemetry = otel.telemetry()
    with pytest.raises(type(exc)), telemetry.token_request():
        raise exc
    [count] = otel.points("reqcc.token.requests")
    assert count.attributes["error.type"] == kind
    assert otel.spans()[0].status.status_code is StatusCode.ERROR


def test_each_request_is_counted_once(otel: Otel) -> None:
    telemetry = otel.telemetry()
    for _ in range(3):
        with telemetry.token_request():
            pass
    with pytest.raises(requests.ConnectionError), telemetry.token_request():
        raise requests.ConnectionError()
    by_outcome = {p.attributes["outcome"]: p.value for p in otel.points("reqcc.token.requests")}
    assert by_outcome == {"success": 3, "error": 1}
    assert sum(p.count for p in otel.points("reqcc.token.request.duration")) == 4
    assert len(otel.spans()) == 4


def test_rejections_and_waits(otel: Otel) -> None:
    telemetry = otel.telemetry()
    telemetry.rejection()
    telemetry.rejection()
    telemetry.waited(0.5)
    telemetry.waited(1.25)
    [rejections] = otel.points("reqcc.token.rejections")
    assert rejections.value == 2 and dict(rejections.attributes) == {"reqcc.client_id": "client-1"}
    [waits] = otel.points("reqcc.token.wait.duration")
    assert waits.count == 2 and waits.sum == pytest.approx(1.75)
    assert dict(waits.attributes) == {"reqcc.client_id": "client-1"}
    assert otel.spans() == []
    assert otel.points("reqcc.token.requests") == []


def test_each_client_has_its_own_points(otel: Otel) -> None:
    one, two = otel.telemetry("one"), otel.telemetry("two")
    with one.token_request():
        pass
    with two.token_request():
        pass
    with two.token_request():
        pass
    two.rejection()
    counts = {p.attributes["reqcc.client_id"]: p.value for p in otel.points("reqcc.token.requests")}
    assert counts == {"one": 1, "two": 2}
    [rejections] = otel.points("reqcc.token.rejections")
    assert rejections.attributes["reqcc.client_id"] == "two"


def test_no_secret_or_token_in_anything_recorded(otel: Otel) -> None:
    telemetry = otel.telemetry("client-1")
    body = json.dumps({"error": "invalid_client", "error_description": f"{SECRET} {TOKEN}"})
    with pytest.raises(InvalidClient), telemetry.token_request("https://as.example/token"):
        raise InvalidClient("invalid_client", body, message=f"refused {SECRET} {TOKEN}")
    with pytest.raises(TokenResponseError), telemetry.token_request():
        raise TokenResponseError(f"access_token={TOKEN} client_secret={SECRET}")
    recorded: list[str] = []
    for span in otel.spans():
        recorded += [span.name, repr(dict(span.attributes or {})), repr(span.status.description)]
        recorded += [repr(e.attributes) for e in span.events]
    data = otel.reader.get_metrics_data()
    assert data is not None
    recorded.append(data.to_json())
    text = "\n".join(recorded)
    assert "client-1" in text and "invalid_client" in text  # the check reads what was recorded
    assert SECRET not in text and TOKEN not in text


def test_the_global_providers_are_used_by_default() -> None:
    # Without an SDK installed globally, the API's proxies record nothing and raise nothing.
    telemetry = create_telemetry("client-1")
    assert telemetry.enabled
    with telemetry.token_request("https://as.example/token"):
        pass
    telemetry.rejection()
    telemetry.waited(0.1)


def test_older_api_without_the_bucket_advisory() -> None:
    meter = mock.Mock()
    meter.create_histogram.side_effect = [TypeError("unexpected keyword"), "histogram"]
    assert _histogram(meter, "reqcc.x", "d") == "histogram"
    assert meter.create_histogram.call_args_list[1] == mock.call("reqcc.x", unit="s", description="d")


# -- without OpenTelemetry --------------------------------------------------------------------


def test_without_opentelemetry_telemetry_is_a_no_op() -> None:
    blocked = {name: None for name in ("opentelemetry", "opentelemetry.metrics", "opentelemetry.trace")}
    with mock.patch.dict(sys.modules, blocked):
        telemetry = create_telemetry("client-1")
    assert type(telemetry) is Telemetry and not telemetry.enabled
    with telemetry.token_request("https://as.example/token"):
        pass
    with pytest.raises(requests.ConnectionError), telemetry.token_request():
        raise requests.ConnectionError()
    telemetry.rejection()
    telemetry.waited(1.0)
    assert repr(telemetry) == "Telemetry(enabled=False)"


def test_reqcc_imports_and_works_when_opentelemetry_cannot_be_imported() -> None:
    script = textwrap.dedent(
        """
        import sys
        import reqcc, reqcc.telemetry, reqcc.discovery
        assert not [m for m in sys.modules if m.startswith("opentelemetry")], "imported at module level"
        for name in ("opentelemetry", "opentelemetry.metrics", "opentelemetry.trace"):
            sys.modules[name] = None  # any import of it now raises ImportError
        telemetry = reqcc.telemetry.create_telemetry("client-1")
        assert not telemetry.enabled
        with telemetry.token_request():
            pass
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
