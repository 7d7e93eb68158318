"""Presets for workload identity: the manager's keywords for the platforms services run on.

Each function returns a plain ``dict`` of keywords to pass on, with your scopes and
anything else::

    session = ClientCredentialsSession(
        **entra_workload_identity(), scopes=["api://orders/.default"], base_url=API
    )

Nothing here reads a file or talks to a server, and no cloud SDK is imported: the
platform's JWT is read by the manager when a token is needed (:mod:`reqcc.client_assertion`).
See :doc:`/workload-identity`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from .client_assertion import AssertionPath
from .errors import ConfigurationError

__all__ = ["DEFAULT_ENTRA_AUTHORITY", "entra_workload_identity", "kubernetes_service_account"]

#: Entra ID's public-cloud authority (``AZURE_AUTHORITY_HOST`` names another cloud's).
DEFAULT_ENTRA_AUTHORITY = "https://login.microsoftonline.com/"

# A tenant is a GUID or a domain name (contoso.onmicrosoft.com): one path segment, no more.
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")


def _setting(value: str | None, name: str, environ: Mapping[str, str], what: str) -> str:
    found = value if value is not None else environ.get(name)
    if not isinstance(found, str) or not found.strip():
        raise ConfigurationError(
            f"{what} is not set: {name} is missing from the environment (the Entra workload identity "
            "webhook sets it in pods whose service account is annotated azure.workload.identity/client-id "
            'and labelled azure.workload.identity/use: "true"), and none was passed'
        )
    return found.strip()


def entra_workload_identity(
    *,
    client_id: str | None = None,
    tenant_id: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    authority_host: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the keywords of an Entra ID (Azure AD) app that authenticates with workload identity.

    Reads what the Azure workload identity webhook injects into the pod, from ``environ``
    (default: ``os.environ``, only read): ``AZURE_CLIENT_ID`` (the app's client id),
    ``AZURE_TENANT_ID``, ``AZURE_FEDERATED_TOKEN_FILE`` (the projected service-account
    token, audience ``api://AzureADTokenExchange``) and ``AZURE_AUTHORITY_HOST`` (default
    :data:`DEFAULT_ENTRA_AUTHORITY`; a bare host such as ``login.microsoftonline.us``, as
    azure-identity's ``AzureAuthorityHosts`` spell them, means https). A keyword given here
    wins over its variable.

    The token endpoint is the v2.0 one, ``{authority}/{tenant}/oauth2/v2.0/token``. Entra
    grants ``{resource}/.default`` scopes to client credentials: pass
    ``scopes=["api://…/.default"]`` next to these keywords.

    :returns: ``{"token_url": …, "client_id": …, "client_assertion_file": …}``.
    :raises ConfigurationError: a setting is missing, or the tenant is not one path segment.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    client = _setting(client_id, "AZURE_CLIENT_ID", env, "the client id")
    tenant = _setting(tenant_id, "AZURE_TENANT_ID", env, "the tenant id")
    path = (
        token_file
        if token_file is not None
        else _setting(None, "AZURE_FEDERATED_TOKEN_FILE", env, "the federated token file")
    )
    authority = authority_host if authority_host is not None else env.get("AZURE_AUTHORITY_HOST")
    authority = (authority or DEFAULT_ENTRA_AUTHORITY).strip()
    if "://" not in authority:
        # A bare host, as azure-identity's AzureAuthorityHosts spell them
        # ("login.microsoftonline.us"): azure-identity reads it as https, and so does reqcc.
        authority = "https://" + authority
    if not _TENANT.fullmatch(tenant):
        raise ConfigurationError(f"the tenant id must be a GUID or a domain name, got {tenant[:80]!r}")
    return {
        "token_url": f"{authority.rstrip('/')}/{tenant}/oauth2/v2.0/token",
        "client_id": client,
        "client_assertion_file": path,
    }


def kubernetes_service_account(
    path: str | os.PathLike[str],
    *,
    client_id: str,
    audience: str | None = None,
    token_url: str | None = None,
    issuer: str | None = None,
) -> dict[str, Any]:
    """Return the keywords of a client that authenticates with a projected service-account token.

    The pod spec projects the token into a volume (``serviceAccountToken`` with its
    ``path``, ``audience`` and ``expirationSeconds``); the kubelet rotates it, swapping the
    volume's ``..data`` symlink, and reqcc reads it again when it changes. The
    authorization server trusts the cluster's service-account issuer for this client (a
    federated credential, or ``private_key_jwt`` with the issuer's JWKS registered).

    :param path: where the pod reads the token (the volume's mount path and the projected
        ``path``, e.g. ``/var/run/secrets/tokens/idp-token``).
    :param client_id: the client the authorization server knows this workload as.
    :param audience: the audience the projected token was asked for; if given, a token
        for another audience (the pod's default token, say) is refused locally with a
        :class:`~reqcc.ClientAssertionError` naming both.
    :param token_url: the token endpoint; or
    :param issuer: the authorization server's issuer, to discover it.
    :returns: ``{"token_url" or "issuer": …, "client_id": …, "client_assertion_file": …}``.
    :raises ConfigurationError: neither or both of ``token_url`` and ``issuer``.
    """
    if (token_url is None) == (issuer is None):
        raise ConfigurationError("kubernetes_service_account() needs token_url= or issuer=, exactly one")
    endpoint = {"token_url": token_url} if token_url is not None else {"issuer": issuer}
    return {
        **endpoint,
        "client_id": client_id,
        "client_assertion_file": AssertionPath(path, audience=audience) if audience is not None else path,
    }
