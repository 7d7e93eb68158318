"""The documentation site in docs/: its reference covers the public names, its pytest example runs.

The site itself (warnings as errors, the doctests of its pages) is built by ``tox -e docs``.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import reqcc
import reqcc.stores
import reqcc.testing

DOCS = Path(__file__).resolve().parent.parent / "docs"

pytest_plugins = ["pytester"]


def documented_names() -> set[str]:
    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    return set(re.findall(r"^\.\. (?:auto\w+|py:\w+):: ([\w.]+)", api, flags=re.MULTILINE))


@pytest.mark.parametrize(
    "module", [reqcc, reqcc.stores, reqcc.testing], ids=lambda module: module.__name__
)
def test_api_reference_covers_the_public_names(module: object) -> None:
    """A name added to a public module's ``__all__`` gets a place in the API reference."""
    internal = {"__version__", "check_token_store", "token_store_key", "DEFAULT_LEASE_TIMEOUT"}
    public = {f"{module.__name__}.{name}" for name in module.__all__ if name not in internal}  # type: ignore[attr-defined]
    missing = public - documented_names()
    assert not missing, f"docs/api.rst does not document {sorted(missing)}"


def test_every_page_is_in_the_toctree() -> None:
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    listed = set(re.findall(r"^   ([\w-]+)$", index, flags=re.MULTILINE))
    pages = {path.stem for path in DOCS.glob("*.rst")} - {"index"}
    assert pages == listed


def test_testing_page_pytest_example_runs(pytester: pytest.Pytester) -> None:
    """The pytest example on the "Testing your code" page passes as written, with the plugin."""
    page = (DOCS / "testing.rst").read_text(encoding="utf-8")
    block = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", page)
    assert block is not None and "reqcc_server" in block.group(1)
    pytester.makepyfile(test_example=re.sub(r"^    ", "", block.group(1), flags=re.MULTILINE))
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_configuration_page_describes_every_manager_keyword() -> None:
    """Every keyword of the manager is described in one place: the configuration page.

    The page embeds the manager's docstring (``autoclass``), so the docstring must have a
    ``:param:`` for every parameter, and the page's own overview must name each one too.
    """
    page = (DOCS / "configuration.rst").read_text(encoding="utf-8")
    assert re.search(r"^\.\. autoclass:: reqcc\.ClientCredentialsManager$", page, flags=re.MULTILINE)
    keywords = [name for name in inspect.signature(reqcc.ClientCredentialsManager).parameters]
    assert "token_deadline" in keywords and "dpop_key" in keywords
    docstring = inspect.getdoc(reqcc.ClientCredentialsManager) or ""
    undocumented = [name for name in keywords if f":param {name}:" not in docstring]
    assert not undocumented, f"ClientCredentialsManager's docstring has no :param: for {undocumented}"
    unnamed = [name for name in keywords if f"``{name}``" not in page]
    assert not unnamed, f"docs/configuration.rst does not name {unnamed}"


def test_architecture_page_follows_the_layers() -> None:
    """docs/architecture.rst lists every module once, top to bottom as LAYERS orders them."""
    from .test_structure import _layer, _modules

    page = (DOCS / "architecture.rst").read_text(encoding="utf-8")
    section = page[page.index(".. layers-start") : page.index(".. layers-end")]
    listed = re.findall(r"^\s*(?:- )?``(reqcc(?:\.\w+)*)``", section, flags=re.MULTILINE)
    assert sorted(listed) == sorted(set(listed)), "a module is listed twice"
    assert set(listed) == set(_modules()), "the page and the package list different modules"
    layers = [_layer(module) for module in listed]
    assert layers == sorted(layers, reverse=True), "the page is not in LAYERS order, top to bottom"


#: The widest code line a page shows without a horizontal scroll bar (the theme's code
#: column at its default font size holds about 90 characters).
MAX_CODE_WIDTH = 90
#: A line that opens a code block: a code or doctest directive, or a paragraph ending in "::".
_OPENS_CODE = re.compile(
    r"^(?P<indent> *)(?:\.\. (?:code-block|code|sourcecode|doctest|testcode|testoutput|parsed-literal)"
    r"::.*|(?!\.\. )\S.*::)$"
)


def code_lines(text: str) -> list[tuple[int, str]]:
    """The shown code lines of an rst page: ``(line number, line without the block's indent)``.

    Hidden set-up (``testsetup``, ``testcleanup``) is not shown, so it is not included.
    """
    lines = text.splitlines()
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        opened = _OPENS_CODE.match(lines[i])
        i += 1
        if not opened:
            continue
        while i < len(lines) and (not lines[i].strip() or re.match(r"^\s+:[\w-]+:", lines[i])):
            i += 1  # the directive's options and the blank line
        if i == len(lines):
            break
        indent = len(lines[i]) - len(lines[i].lstrip())
        if indent <= len(opened.group("indent")):
            continue
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) >= indent):
            if lines[i].strip():
                found.append((i + 1, lines[i][indent:]))
            i += 1
    return found


def test_code_lines_are_found_in_every_kind_of_block() -> None:
    page = (
        "Text::\n\n    literal\n\n.. code-block:: python\n   :caption: x\n\n    code\n\n"
        ".. doctest:: g\n\n    >>> 1\n    1\n\n.. testsetup:: g\n\n    hidden\n\nAfter.\n"
    )
    assert [line for _, line in code_lines(page)] == ["literal", "code", ">>> 1", "1"]


@pytest.mark.parametrize(
    "page", [*sorted(DOCS.glob("*.rst")), DOCS.parent / "README.rst"], ids=lambda path: path.name
)
def test_no_code_line_is_wider_than_the_page(page: Path) -> None:
    """A code line longer than the page scrolls sideways, and its end is not read."""
    wide = [
        f"{page.name}:{number}: {len(line)} characters: {line[:50]}…"
        for number, line in code_lines(page.read_text(encoding="utf-8"))
        if len(line) > MAX_CODE_WIDTH
    ]
    assert not wide, f"code lines wider than {MAX_CODE_WIDTH} characters:\n" + "\n".join(wide)


def test_the_contract_page_numbers_every_item_with_a_stable_anchor() -> None:
    """docs/contract.rst holds the behaviour contract the code and tests cite as "item N"."""
    page = (DOCS / "contract.rst").read_text(encoding="utf-8")
    anchors = [int(n) for n in re.findall(r"^\.\. _item-(\d+):$", page, flags=re.MULTILINE)]
    assert anchors == list(range(1, 40))
    for number in anchors:
        assert re.search(rf"^\.\. _item-{number}:\n\n\*\*{number}\.\*\* \S", page, flags=re.MULTILINE)
