"""The one way reqcc sends a request to the authorization server.

Token requests (:mod:`reqcc.token_endpoint`) and metadata requests (:mod:`reqcc.discovery`)
both go through :func:`send`, as Go's x/oauth2 sends from one place in
``internal/token.go``: building a request and parsing its answer are pure functions
elsewhere; here is only what touches the network. One request, no retry (the caller's
:class:`~reqcc.token_endpoint.RetryPolicy` is the one retry loop around it), and:

- no credential of the session's: neither ``session.auth``, nor an ``Authorization`` from
  ``session.headers`` or ``.netrc`` reaches the server; only the ``auth_headers`` given;
  the request is marked so that a reqcc adapter mounted on the session passes it through;
- the session's ``verify`` passed explicitly (``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``
  cannot replace it, psf/requests#3829);
- no redirect followed (a caller that follows some does so itself, one :func:`send` a hop);
- the timeout cut to what is left of the deadline, and no request started once it has passed;
- the answer read streamed and capped at :data:`MAX_ANSWER_BYTES` after decoding
  (:func:`reqcc._body.read_capped`): a hostile server's endless, dripping or gzip-bomb
  body is abandoned, and the caller's :class:`Refusals` names the failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import requests

from ._body import DEFAULT_BODY_LIMIT, BodyLimitError, read_capped
from ._urls import NO_TOKEN_ATTRIBUTE, require_no_cleartext_proxy

__all__ = [
    "MAX_ANSWER_BYTES", "DEFAULT_TIMEOUT", "Timeout", "Answer", "Refusals", "send", "read_answer",
    "clip_timeout",
]

#: The largest answer read from the authorization server (after decoding): 1 MiB, as Go's x/oauth2.
MAX_ANSWER_BYTES = DEFAULT_BODY_LIMIT

#: (connect, read) seconds, or one number for both.
Timeout = float | tuple[float, float]
#: (connect, read) seconds for a request to the authorization server when no ``timeout`` is given.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 15.0)


@dataclass(frozen=True)
class Answer:
    """The authorization server's answer to one request, read in full (or not at all).

    :ivar status: the HTTP status.
    :ivar headers: the response headers (case-insensitive).
    :ivar body: the decoded body; ``b""`` when the caller's ``skip_body`` declined it.
    :ivar response: the closed ``requests.Response`` (for hooks and the errors' ``response``).
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    response: requests.Response


class Refusals(Protocol):
    """The caller's errors for a request the deadline or the size cap ends."""

    def expired(self, url: str, response: requests.Response | None, received: int | None) -> Exception:
        """The error once the deadline has passed: before sending (``response`` ``None``) or
        while the body was still arriving (``received`` decoded bytes so far)."""

    def too_large(self, url: str, response: requests.Response) -> Exception:
        """The error for a body larger than :data:`MAX_ANSWER_BYTES` after decoding."""


class _OnlyTheseCredentials(requests.auth.AuthBase):
    """Sets exactly the given credential headers, overriding session auth and .netrc.

    It also marks the request as one a reqcc adapter must pass through untouched: a
    ``token_session`` that reqcc is mounted on (one session for API and token calls) would
    otherwise route the request back into the manager, which waits on itself.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.pop("Authorization", None)
        r.headers.update(self._headers)
        setattr(r, NO_TOKEN_ATTRIBUTE, True)
        return r

    def __repr__(self) -> str:
        return "_OnlyTheseCredentials(<hidden>)"


def clip_timeout(timeout: Timeout, deadline: float | None, now: float) -> Timeout | None:
    """Return ``timeout`` cut to what is left until ``deadline`` (at ``now``); ``None`` if nothing is."""
    if deadline is None:
        return timeout
    left = deadline - now
    if left <= 0:
        return None
    if isinstance(timeout, tuple):
        return (min(timeout[0], left), min(timeout[1], left))
    return min(timeout, left)


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    refusals: Refusals,
    timeout: Timeout,
    deadline: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    data: bytes | None = None,
    auth_headers: Mapping[str, str] | None = None,
    credentials: str | None = None,
    on_headers: Callable[[requests.Response], object] | None = None,
    skip_body: Callable[[requests.Response], bool] | None = None,
) -> Answer:
    """Send one request to the authorization server and return its answer, read capped.

    :param session: the ``requests.Session`` that sends (its adapters, proxies, ``cert``
        and ``verify``); ``requests.Session.request`` is called, not an override of it
        (``OAuth2Session.request`` would refuse loopback http and add a token of its own).
    :param headers: the request's headers (no credentials: see ``auth_headers``).
    :param refusals: the caller's errors for the deadline and the size cap.
    :param timeout: (connect, read) seconds, or one number for both; cut to the deadline.
    :param deadline: a ``monotonic`` time by which the request and every byte of its answer
        must be over; ``None`` for none.
    :param data: the request body.
    :param auth_headers: the only credential headers sent (``Authorization`` and the like).
    :param credentials: what the request carries, named in the refusal to send it over
        plain http through a proxy; ``None``: it carries none, no check.
    :param on_headers: called with the response once its headers arrived, before the body
        is read (a DPoP nonce is taken from every answer, even one too large to read).
    :param skip_body: ``True`` for an answer whose body is not wanted: it is closed unread.
    :raises Exception: ``refusals.expired(...)`` or ``refusals.too_large(...)``.
    :raises requests.RequestException: the network failed (read errors mapped as
        ``iter_content`` maps them).
    """
    clipped = clip_timeout(timeout, deadline, monotonic())
    if clipped is None:
        raise refusals.expired(url, None, None)
    if credentials is not None and url[:5].lower() == "http:":
        # Loopback (checked at configuration): only without a proxy.
        proxies = session.merge_environment_settings(url, {}, None, None, None)["proxies"]
        require_no_cleartext_proxy(url, proxies, credentials)
    response = requests.Session.request(
        session,
        method,
        url,
        data=data,
        headers=dict(headers),
        auth=_OnlyTheseCredentials(auth_headers or {}),
        timeout=clipped,
        allow_redirects=False,
        verify=session.verify,
        stream=True,
    )
    if on_headers is not None:
        on_headers(response)
    if skip_body is not None and skip_body(response):
        response.close()
        return Answer(response.status_code, response.headers, b"", response)
    body = read_answer(response, url, refusals, deadline=deadline, monotonic=monotonic)
    return Answer(response.status_code, response.headers, body, response)


def read_answer(
    response: requests.Response,
    url: str,
    refusals: Refusals,
    *,
    deadline: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> bytes:
    """Return the body of an answer of the authorization server, read capped (see :func:`send`).

    Also for a response a hook put in the place of the one :func:`send` returned: a body
    already read is checked against the cap as it is.

    :raises Exception: ``refusals.expired(...)`` or ``refusals.too_large(...)``.
    """
    try:
        return read_capped(response, MAX_ANSWER_BYTES, deadline=deadline, monotonic=monotonic)
    except BodyLimitError as exc:
        if exc.reason == "deadline":
            raise refusals.expired(url, response, exc.received) from None
        raise refusals.too_large(url, response) from None
