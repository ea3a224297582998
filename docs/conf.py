"""Sphinx configuration of the lightly_matrix manual.

The build needs no network: no intersphinx, MathJax served from a pip-installed copy
(``sphinx-mathjax-offline``), and the generated pages (presets, results, CLI) are written from the
repository's own files by ``_ext/lm_docs.py`` at build time.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]

import lightly_matrix  # noqa: E402

project = "lightly_matrix"
author = "lightly_matrix developers"
copyright = "lightly_matrix developers, MIT License"
release = version = lightly_matrix.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "sphinx_design",
    "sphinxarg.ext",
    "lm_docs",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 4
suppress_warnings = ["myst.header"]

# API reference: one page per module, generated from the docstrings on every build.
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autoclass_content = "class"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Nitpicky cross-references, for our own names. The dependencies' objects (torch, Lightning,
# lightly, mmdet, ...) cannot be resolved without intersphinx, which needs the network.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|torchvision|pytorch_lightning|lightning|lightly|timm)(\..*)?"),
    (r"py:.*", r"(mmdet|mmengine|mmcv|numpy|np|PIL|sklearn|matplotlib)(\..*)?"),
    (r"py:.*", r"(argparse|pathlib|collections|typing|enum)(\..*)?"),
    (r"py:.*", r"(Tensor|Module|nn\..*|Image|Path|Namespace|ArgumentParser|Dataset|Callable)"),
    (r"py:.*", r"(Any|Sequence|Mapping|Iterable|Iterator|Literal|Self|TypeAlias|Optional|Union)"),
    (r"py:.*", r"(dtype|device|ndarray|LightningModule|Trainer|Callback|Optimizer|LRScheduler)"),
    (r"py:.*", r"(ConfigDict|Config|BaseModule|BaseModel|Hook|Runner|BaseMetric|CocoMetric)"),
    (r"py:.*", r"(ProjectionHead|MaskedVisionTransformerTIMM|DataLoader|Sampler|Generator)"),
    (r"py:.*", r"(optional|callable|NoneType|os\.PathLike|PathLike|function|np\.ndarray)"),
    (r"py:.*", r"(lightning_fabric|torchmetrics|DeviceMesh|DetDataSample)(\..*)?"),
]


def _drop_builtin_docstrings(app, what, name, obj, options, lines) -> None:
    """A re-exported dict or tuple (``methods.METHODS``) has no ``#:`` comment where it is
    documented, so autodoc would show the builtin type's own docstring."""
    builtin = type(obj).__doc__ if what in ("data", "attribute") else None
    if builtin and lines and lines[0].strip() == builtin.strip().splitlines()[0].strip():
        lines.clear()


def setup(app) -> None:
    app.connect("autodoc-process-docstring", _drop_builtin_docstrings, priority=100)


html_theme = "furo"
html_title = f"lightly_matrix {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {"navigation_with_keys": True}
html_last_updated_fmt = None
html_copy_source = False

# MathJax from the local copy that the sphinx-mathjax-offline wheel ships (MathJax 3, with its
# fonts), served from _static/mathjax: the pages render their formulas offline.
_mathjax = importlib.util.find_spec("sphinx-mathjax-offline")
if _mathjax is None or not _mathjax.submodule_search_locations:
    raise RuntimeError("install the docs extra: sphinx-mathjax-offline serves MathJax offline")
html_static_path.append(str(Path(_mathjax.submodule_search_locations[0]) / "static"))
mathjax_path = "mathjax/tex-chtml.js"

copybutton_prompt_text = r"\$ "
copybutton_prompt_is_regexp = True
# Blocks without a language (argparse usage lines) are plain text.
highlight_language = "text"
pygments_style = "friendly"
# CLI flags (--data) and code-like text stay as written: no dashes or curly quotes.
smartquotes = False
pygments_dark_style = "monokai"
