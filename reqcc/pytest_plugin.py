"""The pytest plugin's entry point (``pytest11`` in setup.cfg): see :mod:`reqcc.testing.plugin`.

Kept as the module pytest loads, so ``-p reqcc.pytest_plugin`` and the installed entry
point keep working; the fixtures live in :mod:`reqcc.testing.plugin`.
"""

from __future__ import annotations

from .testing.plugin import pytest_configure, reqcc_server, reqcc_server_factory

__all__ = ["pytest_configure", "reqcc_server", "reqcc_server_factory"]
