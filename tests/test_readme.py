"""README.rst is the package's long description: it must render, and its Python must run."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_renders_without_warnings() -> None:
    docutils_core = pytest.importorskip("docutils.core")
    # halt_level 2: the first warning (bad table, short underline, …) raises SystemMessage.
    docutils_core.publish_doctree(
        readme(), settings_overrides={"report_level": 2, "halt_level": 2, "warning_stream": False}
    )


def test_readme_fits_on_a_few_screens() -> None:
    assert len(readme().splitlines()) <= 300


def test_readme_commands_come_first() -> None:
    """The demo and test commands are the first code a reader sees, and work from a checkout."""
    first_block = re.search(r"\.\. code-block:: sh\n\n((?:    .*\n)+)", readme())
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == [
        "python -m pip install '.[dpop,httpx]' && reqcc demo",
        "python -m pip install tox && tox",
    ]
    assert readme().index(first_block.group(0)) < readme().index("Quick start")


def test_readme_says_it_is_not_on_the_index() -> None:
    assert "not on the package index yet" in readme()
    assert "pip install reqcc" not in readme()


def test_readme_links_resolve() -> None:
    """Every relative link (the docs pages) points at a file of this checkout."""
    links = re.findall(r"`[^`<]*<([^>`]+)>`_", readme())
    local = [link for link in links if "://" not in link]
    assert local, "the README links into the docs"
    for link in local:
        assert (ROOT / link).is_file(), link


def python_blocks() -> list[str]:
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", readme())
    return [re.sub(r"^    ", "", block, flags=re.MULTILINE) for block in blocks]


def test_readme_has_python_examples() -> None:
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_examples_run(index: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each example runs as written (the production one builds its session; nothing is sent)."""
    monkeypatch.setenv("BOOKSTORE_CLIENT_SECRET", "not-a-real-secret")
    source = python_blocks()[index].replace("/run/myapp/", f"{tmp_path}/")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, f"README.rst python block {index}", "exec"), {"__name__": "readme"})  # noqa: S102


def test_readme_quick_start_does_what_it_says() -> None:
    """The quick start prints what the text after it says it prints."""
    quick_start = next(block for block in python_blocks() if "LocalAuthorizationServer" in block)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(quick_start, "README.rst quick start", "exec"), {"__name__": "readme"})  # noqa: S102
    printed = out.getvalue().strip()
    assert f"It prints ``{printed}``" in " ".join(readme().split())
