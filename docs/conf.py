"""Sphinx configuration for reqcc's documentation (built by ``tox -e docs``)."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

# Document the reqcc of this checkout, whatever is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reqcc

project = "reqcc"
author = "the reqcc authors"
copyright = "the reqcc authors"
release = reqcc.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx_copybutton",
]

# A copy button on every code block; the prompts (">>> ", "... ", "$ ") and the output
# lines are left out of what it copies, so a copied example pastes and runs as it is.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

# No network at build time: intersphinx resolves nothing from outside (no inventories).
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
intersphinx_disabled_reftypes = ["*"]

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_typehints_format = "short"
# Names of third-party types (requests, oauthlib) are shown, not linked: nitpicky stays off.
nitpicky = False

# Only explicit ``.. doctest::`` / ``.. testcode::`` blocks run; the ``>>>`` sketches in some
# docstrings are illustrations with ``...`` placeholders, not tests.
doctest_test_doctest_blocks = ""
# Sphinx's defaults, plus NORMALIZE_WHITESPACE: an expected output may be wrapped to keep
# every code line within the page's width (tests/test_docs.py checks it).
doctest_default_flags = (
    doctest.ELLIPSIS
    | doctest.IGNORE_EXCEPTION_DETAIL
    | doctest.DONT_ACCEPT_TRUE_FOR_1
    | doctest.NORMALIZE_WHITESPACE
)
doctest_global_setup = """
import logging
logging.getLogger("reqcc").addHandler(logging.NullHandler())
"""

html_theme = "furo"
html_title = f"reqcc {release}"
html_static_path: list[str] = []
exclude_patterns = ["_build"]
templates_path: list[str] = []
