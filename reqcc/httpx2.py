"""Client-credentials tokens for httpx2 (the httpx fork), sync and async: the same code as :mod:`reqcc.httpx`.

Needs ``pip install 'reqcc[httpx2]'``. ``import reqcc`` does not import httpx2; this module
does.

.. code-block:: python

    from reqcc.httpx2 import ClientCredentialsAuth

    auth = ClientCredentialsAuth(token_url=..., client_id=..., client_secret=...,
                                 base_url="https://api.example.com/")
    async with httpx2.AsyncClient(auth=auth, event_hooks={"request": [auth.keep_home]}) as client:
        await client.get("https://api.example.com/books")
"""

from __future__ import annotations

import httpx2

from ._httpx_auth import AuthFlows

__all__ = ["ClientCredentialsAuth"]


class ClientCredentialsAuth(AuthFlows, httpx2.Auth):
    """An ``httpx2.Auth`` for ``httpx2.Client`` and ``httpx2.AsyncClient`` that attaches the manager's token.

    Takes ``base_url=`` and either ``manager=`` or the manager's keywords; see
    :class:`reqcc._httpx_auth.AuthFlows` for the rules, and :doc:`/httpx`.
    """

    _byte_stream = httpx2.ByteStream
