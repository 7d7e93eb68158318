"""Platform-signed JWTs for the workload-identity tests, made with jwcrypto (not reqcc's code).

:class:`Platform` is a Kubernetes-like issuer: its own EC key, ``mint()`` a service-account
token, ``write_*`` the ways a platform puts one on disk (in place, ``os.replace``, and the
kubelet's ``..data`` symlink swap).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from jwcrypto import jwk, jwt

__all__ = ["KubeletVolume", "Platform", "unsigned_jwt", "write_in_place", "write_replace"]

K8S_ISSUER = "https://kubernetes.default.svc.cluster.local"
K8S_SUBJECT = "system:serviceaccount:shop:orders"
ENTRA_AUDIENCE = "api://AzureADTokenExchange"


class Platform:
    """A token issuer of a platform, with an EC P-256 key that only it holds."""

    def __init__(self, issuer: str = K8S_ISSUER, subject: str = K8S_SUBJECT, kid: str = "platform-1") -> None:
        self.issuer = issuer
        self.subject = subject
        self.kid = kid
        self.key = jwk.JWK.generate(kty="EC", crv="P-256", kid=kid)
        self._serial = itertools.count(1)

    def public_pem(self) -> bytes:
        """The issuer's public key as PEM (what a federated credential trusts)."""
        pem: bytes = self.key.export_to_pem(private_key=False)
        return pem

    def public_jwk(self) -> dict[str, Any]:
        """The issuer's public key as a JWK dict."""
        return dict(json.loads(self.key.export_public()))

    def mint(
        self, *, audience: str = ENTRA_AUDIENCE, now: float, lifetime: float = 3600, **claims: Any
    ) -> str:
        """A signed token for ``subject``, issued at ``now``."""
        payload = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": audience,
            "iat": int(now),
            "exp": int(now + lifetime),
            "jti": f"platform-{next(self._serial)}",
            **claims,
        }
        token = jwt.JWT(header={"alg": "ES256", "kid": self.kid, "typ": "JWT"}, claims=payload)
        token.make_signed_token(self.key)
        text: str = token.serialize()
        return text


def unsigned_jwt(payload: dict[str, Any]) -> str:
    """A JWT-shaped string with ``payload`` and a bogus signature (for local checks only)."""
    import base64

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256'})}.{part(payload)}.c2lnbmF0dXJl"


def write_in_place(path: Path, text: str) -> None:
    """Rewrite ``path`` in place (same inode), as Entra's webhook-mounted file is."""
    with open(path, "r+" if path.exists() else "w") as handle:
        handle.seek(0)
        handle.write(text)
        handle.truncate()


def write_replace(path: Path, text: str) -> None:
    """Replace ``path`` atomically (a new inode), through a temporary file and ``os.replace``."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


class KubeletVolume:
    """A projected volume as the kubelet writes it: ``token -> ..data/token``, ``..data -> ..<ts>``.

    Each :meth:`publish` writes a new timestamped folder and swaps ``..data`` atomically
    (a new symlink renamed over the old one), then removes the old folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        """The path a pod reads: ``<root>/token``."""
        return self.root / "token"

    def publish(self, text: str) -> None:
        """Publish ``text`` as the token, the kubelet's way."""
        self.generation += 1
        folder = self.root / f"..2026_12_08_{self.generation:06d}"
        folder.mkdir()
        (folder / "token").write_text(text)
        data = self.root / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        link = self.root / "..data_tmp"
        os.symlink(folder.name, link)
        os.replace(link, data)
        if not self.path.is_symlink():
            os.symlink("..data/token", self.path)
        if old is not None:
            (self.root / old / "token").unlink()
            (self.root / old).rmdir()
