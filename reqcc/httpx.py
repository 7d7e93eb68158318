"""Client-credentials tokens for httpx, sync and async: :class:`ClientCredentialsAuth` (contract item 36).

Needs ``pip install 'reqcc[httpx]'``. ``import reqcc`` does not import httpx; this module
does.

.. code-block:: python

    from reqcc.httpx import ClientCredentialsAuth

    auth = ClientCredentialsAuth(token_url=..., client_id=..., client_secret=...,
                                 base_url="https://api.example.com/")
    async with httpx.AsyncClient(auth=auth, event_hooks={"request": [auth.keep_home]}) as client:
        await client.get("https://api.example.com/books")
"""

from __future__ import annotations

import httpx

from ._httpx_auth import AuthFlows

__all__ = ["ClientCredentialsAuth"]


class ClientCredentialsAuth(AuthFlows, httpx.Auth):
    """An ``httpx.Auth`` for ``httpx.Client`` and ``httpx.AsyncClient`` that attaches the manager's token.

    Takes ``base_url=`` and either ``manager=`` or the manager's keywords; see
    :class:`reqcc._httpx_auth.AuthFlows` for the rules, and :doc:`/httpx`.
    """

    _byte_stream = httpx.ByteStream
