"""Sphinx configuration of the course website (``make site``).

The source folder is the repository root, so every page keeps the path it has in the
repository (``notebooks/04_sovr.ipynb`` becomes ``notebooks/04_sovr.html``) and relative
links and figure paths written for the repository work on the site too. Only ``docs/``,
``notebooks/`` and ``results/README.md`` are read; every other top-level folder is pruned
before Sphinx walks it (``.venv/`` and ``data/`` are large).

Notebooks are rendered from their committed outputs by myst-nb with execution off:
nothing is re-run and nothing is fetched, neither at build time nor in the reader's
browser (MathJax comes from the ``sphinx-mathjax-offline`` package, the theme ships its
own assets, and myst-nb's ipywidgets loader, which would pull its JavaScript from a CDN,
is switched off; see ``_static_widgets`` below).
"""
from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes

ROOT = Path(__file__).resolve().parents[1]

project = "sovr-tutorial"
author = "the sovr-tutorial authors"
copyright = "the sovr-tutorial authors, MIT licence"

root_doc = "docs/index"
extensions = [
    "myst_nb",                   # .ipynb and MyST .md (myst-nb brings myst-parser)
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",    # MathJax served from the site itself, not a CDN
]

# --------------------------------------------------------------------------- sources

# Pages: the docs, every notebook (solutions sit in collapsed cells inside), the results report.
include_patterns = [
    "docs/**.md",
    "notebooks/*.ipynb",
    "results/README.md",
]
_READ_TOP = {"docs", "notebooks", "results"}
# Prune everything else at the top (Sphinx would otherwise walk .venv/ and data/).
exclude_patterns = sorted(p.name for p in ROOT.iterdir() if p.name not in _READ_TOP) + [
    "**/.ipynb_checkpoints",
    "docs/_static",
    "docs/_templates",
]

# --------------------------------------------------------------------------- myst / myst-nb

nb_execution_mode = "off"          # the committed outputs are the content
nb_ipywidgets_js = {}              # no require.js / html-manager from a CDN
nb_merge_streams = True            # one block per stream, as JupyterLab shows it
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3           # `[text](page.md#a-heading)` links resolve
suppress_warnings = ["myst.header"]   # notebooks may skip heading levels; harmless

# --------------------------------------------------------------------------- HTML

html_theme = "sphinx_book_theme"
html_title = "sovr-tutorial"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_extra_path = ["_extra"]       # the top-level index.html that opens docs/index.html
html_last_updated_fmt = None
html_theme_options = {
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": True,   # download the page's source (.ipynb / .md)
    "home_page_in_toc": True,
    "navigation_with_keys": False,
}
html_show_sourcelink = False
html_copy_source = True            # the download button serves the notebook itself

# --------------------------------------------------------------------------- widgets

_VIEW = "application/vnd.jupyter.widget-view+json"
_PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}
WIDGET_NOTE = ("Interactive widget: it needs a running Python kernel, so this static page "
               "cannot show it. Open the notebook in JupyterLab (make course) to use it.")


def _widget_state(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return {}
    return (meta.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
            .get("state", {}))


def _is_progress_bar(model_id: str, state: dict, seen: set | None = None) -> bool:
    """A tqdm bar: an HBox holding a progress model. Meaningless without its kernel."""
    seen = seen or set()
    if model_id in seen or model_id not in state:
        return False
    seen.add(model_id)
    model = state[model_id]
    if model.get("model_name") in _PROGRESS_MODELS:
        return True
    children = model.get("state", {}).get("children", [])
    return any(isinstance(c, str) and _is_progress_bar(c.removeprefix("IPY_MODEL_"), state, seen)
               for c in children)


def _static_widgets(app, doctree):
    """Replace the saved widget views of a notebook page: progress bars go, an explorer
    becomes a short note. The widget state (up to a few hundred kB of JSON) is dropped
    from the page, since no widget manager is loaded to read it."""
    docname = app.env.docname
    source = Path(app.env.doc2path(docname))
    if source.suffix != ".ipynb":
        return
    state = None
    for raw in list(doctree.findall(nodes.raw)):
        if _VIEW not in raw.astext()[:80]:
            continue
        if state is None:
            state = _widget_state(source)
        text = raw.astext()
        try:
            model_id = json.loads(text[text.index(">") + 1:text.rindex("</script>")])["model_id"]
        except (ValueError, KeyError, TypeError):
            model_id = ""
        if _is_progress_bar(model_id, state):
            raw.parent.remove(raw)
        else:
            note = nodes.container(classes=["widget-note"])
            note += nodes.paragraph(text=WIDGET_NOTE)
            raw.replace_self(note)
    # myst-nb keeps the page's JavaScript in env.nb_metadata (not a public API: skip
    # quietly if that changes; the state then stays inline, inert)
    js_files = getattr(app.env, "nb_metadata", {}).get(docname, {}).get("js_files", {})
    js_files.pop("ipywidgets_state", None)


def setup(app):
    app.connect("doctree-read", _static_widgets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
