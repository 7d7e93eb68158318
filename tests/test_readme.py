"""README.rst is the package's long description: it must render, and its Python must parse."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.rst"


def test_readme_renders_without_warnings() -> None:
    docutils_core = pytest.importorskip("docutils.core")
    # halt_level 2: the first warning (bad table, short underline, …) raises SystemMessage.
    docutils_core.publish_doctree(
        README.read_text(encoding="utf-8"),
        settings_overrides={"report_level": 2, "halt_level": 2, "warning_stream": False},
    )


def python_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)
    return [re.sub(r"^    ", "", block, flags=re.MULTILINE) for block in blocks]


def test_readme_has_python_examples() -> None:
    assert len(python_blocks()) >= 8


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_examples_parse(index: int) -> None:
    ast.parse(python_blocks()[index])
