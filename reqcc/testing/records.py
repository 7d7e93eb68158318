"""What the local server saw: the token-request log and the counters."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Counters", "RecordedTokenRequest"]

_SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_SENSITIVE_FIELDS = frozenset({"client_secret", "client_assertion", "assertion", "password", "token"})


@dataclass(frozen=True, repr=False)
class RecordedTokenRequest:
    """One request the token endpoint received, as it arrived.

    :ivar form: the form fields (each name maps to the list of its values).
    :ivar headers: the request headers (names as sent; values unmodified).
    :ivar client_id: the client identifier found in the request, or ``None``.
    :ivar auth_method: ``"client_secret_basic"``, ``"client_secret_post"``,
        ``"private_key_jwt"`` (a client assertion), ``"none"``, or ``None`` when the request
        carried no client identification.
    :ivar status: the HTTP status the server answered.
    :ivar injected: whether a failure injected by the test answered it.

    The ``repr`` hides the ``Authorization`` header and secret-bearing fields.
    """

    form: dict[str, list[str]]
    headers: dict[str, str]
    client_id: str | None
    auth_method: str | None
    status: int = 0
    injected: bool = False

    def field(self, name: str) -> str | None:
        """Return the first value of form field ``name``, or ``None``."""
        values = self.form.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """Return the value of header ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def __repr__(self) -> str:
        form = {k: (["<hidden>"] if k in _SENSITIVE_FIELDS else v) for k, v in self.form.items()}
        headers = {k: ("<hidden>" if k.lower() in _SENSITIVE_HEADERS else v) for k, v in self.headers.items()}
        return (
            f"RecordedTokenRequest(status={self.status}, client_id={self.client_id!r}, "
            f"auth_method={self.auth_method!r}, form={form!r}, headers={headers!r}, "
            f"injected={self.injected})"
        )


@dataclass
class Counters:
    """The server's counters (see :meth:`LocalAuthorizationServer.stats`)."""

    token_requests: int = 0
    tokens_issued: int = 0
    token_errors: int = 0
    injected_failures: int = 0
    api_requests: int = 0
    api_401s: int = 0
    api_403s: int = 0
    revocations: int = 0
    tokens_revoked: int = 0
