"""How the local server applies DPoP (RFC 9449) at its token endpoint and its API.

:class:`DPoPPolicy` holds the server's proof verifier (:mod:`.dpop`), its nonces and the
knobs a test turns: which clients must use DPoP, whether the token endpoint and the API
demand nonces, and whether the server ignores DPoP altogether (as a server without DPoP
support does: it issues Bearer tokens to DPoP clients, which they must refuse).

At the token endpoint a request with a valid proof gets a token bound to the proof's key
(``cnf.jkt``, ``token_type`` ``DPoP``); a bad proof gets ``400 invalid_dpop_proof``, a
missing or stale nonce ``400 use_dpop_nonce`` with a ``DPoP-Nonce`` header (§8). At the
API a ``DPoP`` token needs a proof with ``ath`` by the bound key; the errors are
``401`` with ``WWW-Authenticate: DPoP error=...`` (§7.1, §9). A bound token presented as
``Bearer`` is refused (§7.2).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from .dpop import DPoPProofError, DPoPProofVerifier, ServerNonces, VerifiedProof
from .responses import Answer, json_answer

__all__ = ["DPOP_PROBLEMS", "DPoPPolicy", "header_values"]

#: The API problems that are answered with a ``DPoP`` challenge whatever the scheme used.
DPOP_PROBLEMS = frozenset({"invalid_dpop_proof", "use_dpop_nonce"})


def header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """The values of header ``name`` (case-insensitive) in a request's headers."""
    lowered = name.lower()
    return [value for key, value in headers.items() if key.lower() == lowered]


class DPoPPolicy:
    """The server's DPoP verifier, nonces and settings (all settings may change while serving).

    :param require_dpop: every token request must carry a proof (else only those of clients
        registered with ``dpop=True``).
    :param token_nonce: the token endpoint demands a nonce in proofs.
    :param api_nonce: the API demands a nonce in proofs.
    :param ignore_dpop: behave as a server without DPoP support: proofs are not looked at
        and Bearer tokens are issued.
    :param clock: the server's clock in Unix seconds.
    """

    def __init__(
        self,
        *,
        require_dpop: bool = False,
        token_nonce: bool = False,
        api_nonce: bool = False,
        ignore_dpop: bool = False,
        clock: Callable[[], float],
    ) -> None:
        self.require_dpop = require_dpop
        self.token_nonce = token_nonce
        self.api_nonce = api_nonce
        self.ignore_dpop = ignore_dpop
        self.verifier = DPoPProofVerifier(clock=clock)
        self.nonces = ServerNonces(clock=clock)
        self._verified: list[VerifiedProof] = []
        self._lock = threading.Lock()

    def verified(self) -> list[VerifiedProof]:
        """Every proof accepted so far, oldest first (a copy)."""
        with self._lock:
            return list(self._verified)

    def forget_verified(self) -> None:
        """Forget the accepted proofs (the replay cache is kept)."""
        with self._lock:
            self._verified.clear()

    def _verify(
        self,
        proofs: list[str],
        *,
        method: str,
        url: str,
        nonce: bool,
        access_token: str | None = None,
        jkt: str | None = None,
    ) -> VerifiedProof:
        verified = self.verifier.verify(
            proofs, method=method, url=url, access_token=access_token, jkt=jkt,
            nonce=self.nonces if nonce else None,
        )
        with self._lock:
            self._verified.append(verified)
        return verified

    def token_request(
        self, uri: str, headers: Mapping[str, str], dpop_client: bool
    ) -> tuple[str | None, Answer | None]:
        """Check a token request's proof: ``(jkt to bind the token to, None)`` or ``(None, error answer)``.

        :param dpop_client: the requesting client is registered with ``dpop=True``.
        """
        proofs = header_values(headers, "DPoP")
        if self.ignore_dpop:
            return None, None
        if not proofs:
            if self.require_dpop or dpop_client:
                return None, self.token_error("invalid_dpop_proof", "this client must send a DPoP proof")
            return None, None
        try:
            return self._verify(proofs, method="POST", url=uri, nonce=self.token_nonce).jkt, None
        except DPoPProofError as exc:
            return None, self.token_error(exc.error, str(exc))

    def token_error(self, error: str, description: str) -> Answer:
        """A token endpoint's DPoP error (RFC 9449 §5, §8): 400 with a JSON body."""
        status, headers, payload = json_answer(400, {"error": error, "error_description": description})
        headers["Cache-Control"] = "no-store"
        return status, headers, payload

    def api_problem(
        self, method: str, uri: str, headers: Mapping[str, str], access_token: str, jkt: str | None
    ) -> str | None:
        """Check an API request's proof for a ``DPoP`` token bound to ``jkt``: the problem, or ``None``."""
        if jkt is None:  # a Bearer token presented with the DPoP scheme
            return "invalid_token"
        try:
            self._verify(
                header_values(headers, "DPoP"), method=method, url=uri, nonce=self.api_nonce,
                access_token=access_token, jkt=jkt,
            )
        except DPoPProofError as exc:
            return exc.error
        return None

    def nonce_headers(self, at_api: bool) -> dict[str, str]:
        """The ``DPoP-Nonce`` header to add to an answer, when that endpoint demands nonces."""
        if self.ignore_dpop or not (self.api_nonce if at_api else self.token_nonce):
            return {}
        return {"DPoP-Nonce": self.nonces.current()}

