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

What a notebook shows, the page shows: a ``display(Markdown(...))`` output is parsed as MyST,
tables included (myst-nb's default, CommonMark, has no tables and printed them as a paragraph
of pipes); each widget becomes the picture it drew when the notebook was run, taken from the
widget state saved in the notebook (``docs/build.py``'s ``widget_outputs``); and the theme's
colour mode is set, so no page logs "Got invalid theme mode" on a first visit.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

from docutils import nodes

ROOT = Path(__file__).resolve().parents[1]


def _load_build_module():
    """docs/build.py, loaded by path under its own name (a plain ``import build`` could find
    PyPA's ``build`` package instead). It reads the notebooks' widget outputs."""
    spec = importlib.util.spec_from_file_location("sovr_site_build",
                                                  Path(__file__).with_name("build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site_build = _load_build_module()

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
# display(Markdown(...)) outputs are parsed as MyST, with the extensions below: pipe tables
# become tables (the default, "commonmark", has no tables; myst-parser's own parser has them on)
nb_render_markdown_format = "myst"
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
# the pydata theme (under sphinx-book-theme) writes localStorage "mode" || default_mode into
# the page; with no default_mode, a first visit (and every file:// page in a browser that
# keeps files apart) logs "Got invalid theme mode: . Resetting to auto."
html_context = {"default_mode": "auto"}
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

_VIEW = site_build.WIDGET_VIEW
WIDGET_NOTE = ("Interactive widget: it needs a running Python kernel, so this static page "
               "cannot show it. Open the notebook in JupyterLab (make course) to use it.")
PICTURE_NOTE = ("A picture of an interactive widget: what it drew when this notebook was run{at}. "
                "Moving it needs a running Python kernel: open the notebook in JupyterLab "
                "(make course).")
FIGURE_NOTE = ("A committed figure of what this interactive widget computes ({path}): the "
               "notebook was saved without the widget's own picture. Moving the widget needs a "
               "running Python kernel: open the notebook in JupyterLab (make course).")
# A widget whose saved state holds no picture (a notebook saved without its widget state) is
# shown by a committed figure of the same thing, found by its root CSS class or, without a
# state, by a mark in its text repr.
WIDGET_FIGURES = {
    "notebooks/figures/threshold_explorer_cpu.png": ("sovr-threshold-explorer", "sovr-rule-toggle"),
    "results/toy-movie/margin_movie-s0.png": ("sovr-margin-movie", "description='epoch'"),
}


def _committed_figure(view: dict) -> str | None:
    for rel, marks in WIDGET_FIGURES.items():
        if (view["kind"] == marks[0] or marks[1] in view["plain"]) and (ROOT / rel).is_file():
            return rel
    return None


def _picture_node(app, docname: str, view: dict | None) -> nodes.Element:
    """The picture and caption that stand for one widget, or the plain note when there is no
    picture (the site test fails on that)."""
    png, figure = (view or {}).get("picture"), None
    if view and not png:
        figure = _committed_figure(view)
        png = (ROOT / figure).read_bytes() if figure else None
    classes = [f"widget-cell-{view['cell']}"] if view else []
    if not png:
        note = nodes.container(classes=["widget-note"] + classes)
        note += nodes.paragraph(text=WIDGET_NOTE)
        return note
    # beside Sphinx's own output folder, like myst-nb's jupyter_execute/; Sphinx copies it
    # into _images/ (an image URI starting with / is relative to the source folder)
    folder = Path(app.outdir).parent / "widget_pictures"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(png).hexdigest()[:12]
    path = folder / f"{Path(docname).name}-cell{view['cell']}-{digest}.png"
    if not path.is_file():
        path.write_bytes(png)
    box = nodes.container(classes=["widget-picture"] + classes)
    alt = f"the widget {view['kind']}" + (f" at {view['setting']}" if view["setting"] else "")
    box += nodes.image(uri="/" + os.path.relpath(path, app.srcdir).replace(os.sep, "/"), alt=alt)
    for line in [] if figure else view["text"]:
        box += nodes.paragraph(text=line, classes=["widget-text"])
    caption = (FIGURE_NOTE.format(path=figure) if figure else
               PICTURE_NOTE.format(at=f" ({view['setting']})" if view["setting"] else ""))
    box += nodes.paragraph(text=caption, classes=["widget-caption"])
    return box


def _static_widgets(app, doctree):
    """Replace the saved widget views of a notebook page: progress bars go, every other widget
    becomes the picture it drew when the notebook was run (from the widget state saved in the
    notebook), with its setting and text lines then. The widget state itself (up to a few
    hundred kB of JSON) is dropped from the page, since no widget manager is loaded to read it.
    Runs before Sphinx collects the page's images, so the pictures are copied like any other."""
    docname = app.env.docname
    source = Path(app.env.doc2path(docname))
    if source.suffix != ".ipynb":
        return
    state = views = None
    for raw in list(doctree.findall(nodes.raw)):
        if _VIEW not in raw.astext()[:80]:
            continue
        if state is None:
            state = site_build.widget_state(source)
            views = {v["model_id"]: v for v in site_build.widget_outputs(source)}
        text = raw.astext()
        try:
            model_id = json.loads(text[text.index(">") + 1:text.rindex("</script>")])["model_id"]
        except (ValueError, KeyError, TypeError):
            model_id = ""
        if site_build.is_progress_bar(model_id, state):
            raw.parent.remove(raw)
        else:
            raw.replace_self(_picture_node(app, docname, views.get(model_id)))
    # myst-nb keeps the page's JavaScript in env.nb_metadata (not a public API: skip
    # quietly if that changes; the state then stays inline, inert)
    js_files = getattr(app.env, "nb_metadata", {}).get(docname, {}).get("js_files", {})
    js_files.pop("ipywidgets_state", None)


def setup(app):
    # before Sphinx's image collector (priority 500), which registers the pictures to copy
    app.connect("doctree-read", _static_widgets, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
