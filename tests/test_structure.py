"""The package's shape: layers, no import cycles, one list of the manager's keywords.

The layering of docs/architecture.rst and of the behaviour contract (docs/contract.rst), as
a test: data flows top to bottom, and no module imports one above it. Imports inside
``if TYPE_CHECKING:`` are for type checkers only and do not count; imports inside functions
(lazy ones) do.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import reqcc
from reqcc import manager as manager_module
from reqcc.config import ManagerKeywords, check_config
from reqcc.manager import ClientCredentialsManager

PACKAGE = Path(reqcc.__file__).parent

#: Lowest first. A module may import modules of its own layer or below. A module not
#: listed belongs to the nearest listed package above it (``reqcc.stores.base`` →
#: ``reqcc.stores``); a new top-level module needs a line here.
LAYERS: list[set[str]] = [
    {
        "reqcc._log", "reqcc._version", "reqcc.errors", "reqcc.scopes", "reqcc._keywords",
        "reqcc.challenges", "reqcc.fork_safety",
    },
    {"reqcc.oauth_token", "reqcc._urls", "reqcc.dpop", "reqcc._body", "reqcc.telemetry", "reqcc.backoff"},
    {"reqcc.auth_base", "reqcc.to_server", "reqcc.token_messages"},
    {"reqcc.jwt_auth", "reqcc.client_assertion", "reqcc.workload"},
    {"reqcc.client_auth"},
    {"reqcc.token_endpoint", "reqcc.stores"},
    {"reqcc.discovery"},
    {"reqcc.discovered"},
    {
        "reqcc.config", "reqcc.provider", "reqcc.cooldown", "reqcc.validity", "reqcc.token_source",
        "reqcc.store_source",
    },
    {"reqcc.single_flight", "reqcc.reusing"},
    {"reqcc.manager"},
    {"reqcc.policy", "reqcc.async_token"},
    {"reqcc.adapter", "reqcc._untokened"},
    {"reqcc.session", "reqcc._httpx_auth", "reqcc.httpx", "reqcc.httpx2"},
    {"reqcc.testing"},
    {"reqcc"},
    {"reqcc.demo", "reqcc.pytest_plugin"},
    {"reqcc.cli"},
    {"reqcc.__main__"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The reqcc modules ``name`` imports at run time (at import or lazily)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:  # ``from . import jwt_auth`` imports a module, not ``reqcc``
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {module for module in found if module in known and module != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _layer(module: str) -> int:
    probe = module
    while True:
        for index, layer in enumerate(LAYERS):
            if probe in layer:
                return index
        if "." not in probe:
            raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
        probe = probe.rpartition(".")[0]


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_no_module_imports_a_layer_above_it() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in sorted(_graph().items())
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_import_graph_sees_the_edges_it_checks() -> None:
    # The checks above are only as good as the graph: it must see relative, lazy and
    # ``from . import module`` imports, and leave out the type checker's.
    graph = _graph()
    assert "reqcc.manager" in graph["reqcc.adapter"]
    assert "reqcc.jwt_auth" in graph["reqcc.client_auth"]  # lazy, inside make_client_auth
    assert "reqcc.oauth_token" in graph["reqcc.stores.base"]  # ``from ..oauth_token``
    assert "reqcc.manager" not in graph["reqcc.config"]  # under TYPE_CHECKING only
    assert "reqcc.client_auth" not in graph["reqcc.jwt_auth"]


def test_manager_keywords_list_the_managers_signature() -> None:
    # ManagerKeywords is what the session, the adapter and mount() will type their
    # pass-through keywords with: it must say exactly what the manager takes.
    parameters = inspect.signature(ClientCredentialsManager.__init__).parameters
    signature = {
        name: str(parameter.annotation)
        for name, parameter in parameters.items()
        if name != "self"
    }
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in parameters.items() if n != "self")
    keywords = {
        name: getattr(annotation, "__forward_arg__", annotation)
        for name, annotation in ManagerKeywords.__annotations__.items()
    }
    assert list(keywords) == list(signature)
    assert keywords == signature


def test_the_manager_hands_every_keyword_to_the_checks_as_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    # The manager's signature is the one declaration: its keywords reach check_config as one
    # mapping, each once, with the value given or the signature's default, and nothing else
    # (no other local of the constructor). A keyword added to the signature (and mirrored in
    # ManagerKeywords, checked above) reaches the checks with nothing else to write.
    seen: list[dict[str, object]] = []

    def spy(**keywords: Any) -> Any:
        seen.append(dict(keywords))
        return check_config(**keywords)

    monkeypatch.setattr(manager_module, "check_config", spy)
    given: dict[str, Any] = {
        "token_url": "https://as.example/token", "client_id": "app", "client_secret": "s", "max_retries": 5,
    }
    ClientCredentialsManager(**given)
    parameters = inspect.signature(ClientCredentialsManager.__init__).parameters
    expected = {name: p.default for name, p in parameters.items() if name != "self"} | given
    assert seen == [expected]
    assert list(seen[0]) == list(ManagerKeywords.__annotations__)  # in the signature's order


def test_importing_reqcc_imports_no_optional_dependency() -> None:
    # The JWT methods' module is imported only when a JWT method is asked for.
    code = (
        "import sys, reqcc, reqcc.manager, reqcc.client_auth, reqcc.stores\n"
        "print(sorted(m for m in ('reqcc.jwt_auth', 'jwt', 'redis', 'opentelemetry') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
        cwd=PACKAGE.parent,
    ).stdout
    assert out.strip() == "[]"
