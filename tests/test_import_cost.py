"""What ``import reqcc`` loads: only what every user needs; a feature's dependencies load at first use.

Each check runs in a fresh interpreter (``sys.modules`` of this one is full of what other
tests imported). A test here fails when someone adds back an eager import of an optional
or heavy module at the top of a module that ``import reqcc`` reaches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import reqcc
import reqcc.config as reqcc_config
import reqcc.manager as reqcc_manager
import reqcc.stores

ROOT = Path(__file__).resolve().parent.parent

#: Modules ``import reqcc`` must not load, with the feature that loads them when first used.
LAZY = {
    "oauthlib": "the first token request",
    "jwt": "a JWT client assertion or a DPoP key",
    "cryptography": "a JWT client assertion or a DPoP key",
    "redis": "RedisTokenStore",
    "opentelemetry": "telemetry, with opentelemetry-api installed",
    "argparse": "the command line",
    "reqcc.cli": "the command line",
    "reqcc.demo": "reqcc demo",
    "reqcc.testing": "the test helpers",
    "reqcc.discovery": "issuer= / metadata_url=",
    "reqcc.discovered": "issuer= / metadata_url=",
    "reqcc.stores.file_store": "FileTokenStore",
    "reqcc.stores.redis_store": "RedisTokenStore",
    "reqcc.jwt_auth": "a JWT client assertion",
    "difflib": "an unknown keyword's suggestions",
    "uuid": "FileTokenStore",
    "reqcc.stores": "token_store=",
    "reqcc.store_source": "token_store=",
    "reqcc.token_endpoint": "the first manager",
    "reqcc.token_messages": "the first manager",
    "reqcc.telemetry": "the first manager",
}


def _modules_after(code: str) -> set[str]:
    """The names in ``sys.modules`` of a fresh interpreter after ``requests`` and then ``code``."""
    script = (
        "import json, sys\nimport requests\nbefore = set(sys.modules)\n"
        f"{code}\nprint(json.dumps(sorted(set(sys.modules) - before)))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, check=True, cwd=ROOT, env=env, timeout=60,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def _loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_import_reqcc_loads_no_optional_or_feature_module() -> None:
    modules = _modules_after("import reqcc")
    assert "reqcc" in modules and "reqcc.manager" in modules
    eager = {name: why for name, why in LAZY.items() if _loaded(modules, name)}
    assert not eager, f"import reqcc loaded modules meant for first use: {eager}"


def test_every_public_name_still_imports_from_reqcc() -> None:
    names = ", ".join(n for n in reqcc.__all__ if n != "__version__")
    modules = _modules_after(
        f"from reqcc import {names}, __version__\n"
        "import reqcc\nassert set(reqcc.__all__) <= set(dir(reqcc))"
    )
    assert "reqcc.discovery" in modules  # MetadataError and AuthorizationServerMetadata loaded it


def test_lazy_public_names_are_the_real_classes() -> None:
    from reqcc.discovery import AuthorizationServerMetadata, MetadataError
    from reqcc.stores.file_store import FileTokenStore
    from reqcc.stores.redis_store import RedisTokenStore

    assert reqcc.MetadataError is MetadataError
    assert reqcc.AuthorizationServerMetadata is AuthorizationServerMetadata
    assert reqcc.stores.FileTokenStore is FileTokenStore and reqcc.stores.RedisTokenStore is RedisTokenStore
    with pytest.raises(AttributeError, match="NoSuchName"):
        reqcc.NoSuchName  # noqa: B018
    with pytest.raises(AttributeError, match="NoSuchStore"):
        reqcc.stores.NoSuchStore  # noqa: B018
    with pytest.raises(AttributeError, match="NoSuchName"):
        reqcc_manager.NoSuchName  # noqa: B018
    with pytest.raises(AttributeError, match="NoSuchName"):
        reqcc_config.NoSuchName  # noqa: B018


def test_each_feature_loads_what_it_needs_when_used() -> None:
    modules = _modules_after(
        "import reqcc\n"
        "reqcc.ClientCredentialsManager(  # configures discovery; fetches nothing\n"
        "    issuer='https://as.example', client_id='c', client_secret='s')\n"
        "from reqcc.stores import FileTokenStore\n"
    )
    assert _loaded(modules, "reqcc.discovery") and _loaded(modules, "reqcc.stores.file_store")
    assert not _loaded(modules, "oauthlib") and not _loaded(modules, "redis")


def test_a_token_store_loads_the_store_machinery() -> None:
    modules = _modules_after(
        "import reqcc, reqcc.config\n"
        "from reqcc.stores import FileTokenStore\n"
        "reqcc.ClientCredentialsManager(token_url='https://as.example/token', client_id='c',\n"
        "    client_secret='s', token_store=FileTokenStore('unused-dir'))\n"
        "assert callable(reqcc.config.share) and callable(reqcc.config.store_key)\n"
    )
    assert _loaded(modules, "reqcc.store_source") and _loaded(modules, "reqcc.stores.base")


def test_the_first_manager_loads_the_token_request_modules() -> None:
    modules = _modules_after(
        "import reqcc, reqcc.manager\n"
        "reqcc.ClientCredentialsManager(\n"
        "    token_url='https://as.example/token', client_id='c', client_secret='s')\n"
        "from reqcc.token_endpoint import TokenEndpoint\n"
        "assert reqcc.manager.TokenEndpoint is TokenEndpoint\n"
    )
    assert _loaded(modules, "reqcc.token_endpoint") and _loaded(modules, "reqcc.token_messages")
    assert not _loaded(modules, "oauthlib")
