"""Build the course website: ``python docs/build.py`` (what ``make site`` runs).

1. Every notebook the site shows is checked for error outputs (an ``error`` output, or a
   traceback on stderr). One is enough to fail the build: the site shows the committed
   outputs, so a broken run would be published as it is. (Sphinx's ``-W`` would also turn
   unrelated warnings into failures; this check is aimed at exactly the broken outputs.)
2. Sphinx with myst-nb renders ``docs/``, ``notebooks/`` and ``results/README.md`` from the
   repository root (configuration: ``docs/conf.py``), execution off: nothing is re-run.
3. The result is checked for anything that would need the network in the reader's browser
   (a script, stylesheet, font or image from another host), for rendered tracebacks, for
   markdown tables left as text (a paragraph holding a ``| --- |`` row) and for a notebook
   widget without its picture (``widget_outputs``; docs/conf.py puts the pictures in).

Prints the build time and the page count. Output: ``build/site/html`` (``--out`` to change),
Sphinx's cache in ``build/site/doctrees``, its warnings in ``build/site/warnings.txt``.
Exit status 0 on success, 1 on a failed check, Sphinx's status if Sphinx failed.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import re
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DEFAULT_OUT = ROOT / "build" / "site"
NOTEBOOK_GLOB = "notebooks/*.ipynb"   # the notebooks docs/conf.py includes
# pages Sphinx writes that no source file made
GENERATED_PAGES = {"genindex.html", "search.html", "index.html"}
TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}
# a pipe table's separator row as text: | --- |, or | — | after Sphinx's smartquotes
RAW_TABLE = re.compile(r"\|\s*:?(?:-{3,}|[\u2013\u2014][-\u2013\u2014]*):?\s*\|")
CONTROL_MODELS = {"IntSliderModel", "FloatSliderModel", "ToggleButtonsModel", "DropdownModel"}


# --------------------------------------------------------------------------- notebooks

def error_outputs(notebook: Path) -> list[str]:
    """The error outputs of a notebook, one line each: ``error`` outputs, and stderr streams
    that hold a Python traceback (a warning on stderr is not an error)."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            kind = out.get("output_type")
            if kind == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif kind == "stream" and out.get("name") == "stderr":
                text = out.get("text", "")
                text = "".join(text) if isinstance(text, list) else str(text)
                if TRACEBACK.search(text):
                    found.append(f"cell {i}: traceback on stderr: {text.strip().splitlines()[-1]}")
    return found


def check_notebooks(root: Path = ROOT) -> list[str]:
    problems = []
    for nb in sorted(root.glob(NOTEBOOK_GLOB)):
        problems += [f"{nb.relative_to(root)}: {e}" for e in error_outputs(nb)]
    return problems


# --------------------------------------------------------------------------- widgets

def _load(notebook) -> dict:
    if isinstance(notebook, dict):
        return notebook
    return json.loads(Path(notebook).read_text(encoding="utf-8"))


def widget_state(notebook) -> dict:
    """The saved widget models of a notebook (``metadata.widgets``), by model id; empty when
    the notebook was saved without them."""
    meta = _load(notebook).get("metadata", {})
    return meta.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {}) or {}


def _children(model: dict) -> list[str]:
    return [c.removeprefix("IPY_MODEL_") for c in model.get("state", {}).get("children", [])
            if isinstance(c, str)]


def _descendants(model_id: str, state: dict) -> list[dict]:
    """The model and every model below it (children of boxes), depth first, each once."""
    found, stack, seen = [], [model_id], set()
    while stack:
        mid = stack.pop(0)
        if mid in seen or mid not in state:
            continue
        seen.add(mid)
        found.append(state[mid])
        stack[:0] = _children(state[mid])
    return found


def is_progress_bar(model_id: str, state: dict) -> bool:
    """A tqdm bar: a box holding a progress model. Meaningless without its kernel."""
    return any(m.get("model_name") in PROGRESS_MODELS for m in _descendants(model_id, state))


def _image_bytes(model: dict) -> bytes | None:
    """The PNG an ``Image`` widget model holds in a saved state (a base64 buffer)."""
    for buf in model.get("buffers", []):
        if buf.get("path") == ["value"] and buf.get("encoding") == "base64":
            return base64.b64decode(buf.get("data", ""))
    value = model.get("state", {}).get("value")
    return base64.b64decode(value) if isinstance(value, str) and value else None


def _text(value) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", str(value or ""))).split())


def _setting(model: dict) -> str | None:
    """``description = value`` of a control (slider, toggle buttons, dropdown)."""
    s = model.get("state", {})
    name = (s.get("description") or "").strip() or "value"
    if model.get("model_name") in ("ToggleButtonsModel", "DropdownModel"):
        labels, index = s.get("_options_labels") or [], s.get("index")
        if isinstance(index, int) and 0 <= index < len(labels):
            return f"{name}: {labels[index]}"
        return None
    return f"{name} = {s.get('value')}" if s.get("value") is not None else None


def widget_outputs(notebook) -> list[dict]:
    """The widgets a notebook shows, as its saved outputs and widget state record them: every
    output with a widget view that is not a tqdm progress bar, in order. One dict each:
    ``cell`` (index), ``cell_id``, ``model_id``, ``kind`` (the root model's CSS class, or its
    model name), ``picture`` (the PNG its ``Image`` showed when the notebook was run, or None),
    ``setting`` (the controls' values then: "rule: ratio, switching ratio = 0.4") and ``text``
    (its text lines then, e.g. "switched to OVR: 40.6% of samples")."""
    nb = _load(notebook)
    state = widget_state(nb)
    views = []
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            view = out.get("data", {}).get(WIDGET_VIEW)
            if not view:
                continue
            model_id = view.get("model_id", "")
            if is_progress_bar(model_id, state):
                continue
            models = _descendants(model_id, state)
            root = models[0].get("state", {}) if models else {}
            pictures = [_image_bytes(m) for m in models if m.get("model_name") == "ImageModel"]
            views.append({
                "cell": i, "cell_id": cell.get("id", ""), "model_id": model_id,
                "kind": ((root.get("_dom_classes") or [None])[0] or root.get("_model_name")
                         or "widget"),
                "plain": "".join(out.get("data", {}).get("text/plain", "")),
                "picture": next((p for p in pictures if p), None),
                "setting": ", ".join(filter(None, (_setting(m) for m in models
                                                   if m.get("model_name") in CONTROL_MODELS))),
                "text": [t for t in (_text(m.get("state", {}).get("value")) for m in models
                                     if m.get("model_name") == "HTMLModel") if t],
            })
    return views


# --------------------------------------------------------------------------- the HTML

class _Resources(HTMLParser):
    """Collects what a page loads (not what it links to) and rendered error outputs."""

    def __init__(self):
        super().__init__()
        self.loads: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        url = None
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed"):
            url = a.get("src")
        elif tag == "link" and set((a.get("rel") or "").split()) & {
                "stylesheet", "preload", "icon", "modulepreload", "prefetch"}:
            url = a.get("href")
        if url:
            self.loads.append(url)
        classes = set((a.get("class") or "").split())
        if {"output", "traceback"} <= classes or "error" in classes and "output" in classes:
            self.errors.append(f"<{tag} class=\"{a.get('class')}\">")


def _is_remote(url: str) -> bool:
    return bool(re.match(r"^([a-z][a-z0-9+.-]*:)?//", url, re.I)) and not url.startswith("file:")


def raw_tables(page_html: str) -> list[str]:
    """Markdown tables a page shows as text: paragraphs (outside code) holding a pipe table's
    separator row. Their first lines."""
    text = re.sub(r"<(pre|script|style)\b.*?</\1>", "", page_html, flags=re.DOTALL | re.IGNORECASE)
    found = []
    for para in re.findall(r"<p\b[^>]*>(.*?)</p>", text, flags=re.DOTALL | re.IGNORECASE):
        plain = html.unescape(re.sub(r"<[^>]+>", "", para))
        if RAW_TABLE.search(plain):
            found.append(plain.strip().splitlines()[0][:100])
    return found


def missing_widget_pictures(html_dir: Path, root: Path = ROOT) -> list[str]:
    """Each widget of a notebook (``widget_outputs``) must appear on its page as a
    ``widget-picture`` whose image file is in the site."""
    problems = []
    for nb in sorted(root.glob(NOTEBOOK_GLOB)):
        page = Path(html_dir) / "notebooks" / f"{nb.stem}.html"
        widgets = widget_outputs(nb)
        if not widgets or not page.is_file():
            continue
        text = page.read_text(encoding="utf-8", errors="replace")
        pictures = dict(re.findall(r'class="widget-picture widget-cell-(\d+)[^"]*"[^>]*>\s*'
                                   r'<img\b[^>]*?src="([^"]+)"', text))
        for w in widgets:
            src = pictures.get(str(w["cell"]))
            if not src or not (page.parent / src).resolve().is_file():
                problems.append(f"{page.relative_to(html_dir)}: cell {w['cell']} "
                                f"({w['cell_id']}): the widget {w['kind']} has no picture")
    return problems


def check_html(html_dir: Path) -> list[str]:
    """Remote resources in any page (the site must work offline), rendered tracebacks,
    markdown tables shown as text, widgets without their picture, and CSS that pulls from
    another host (@import / url() with http(s) or //)."""
    problems = []
    for page in sorted(html_dir.rglob("*.html")):
        if "_sources" in page.parts:
            continue
        parser = _Resources()
        text = page.read_text(encoding="utf-8", errors="replace")
        parser.feed(text)
        rel = page.relative_to(html_dir)
        problems += [f"{rel}: loads {u} from another host" for u in parser.loads if _is_remote(u)]
        problems += [f"{rel}: shows an error output {e}" for e in parser.errors]
        problems += [f"{rel}: shows a markdown table as text: {t!r}" for t in raw_tables(text)]
    for css in sorted(html_dir.rglob("*.css")):
        text = css.read_text(encoding="utf-8", errors="replace")
        for m in re.finditer(r"(?:@import\s+|url\()\s*['\"]?((?:https?:)?//[^'\")\s]+)", text):
            problems.append(f"{css.relative_to(html_dir)}: pulls {m.group(1)}")
    return problems + missing_widget_pictures(html_dir)


def pages(html_dir: Path) -> list[Path]:
    """The site's pages: one per source document (Sphinx's own index and search pages and
    the top-level redirect are not counted)."""
    return sorted(p for p in html_dir.rglob("*.html")
                  if not ({"_sources", "_static", "_images"} & set(p.relative_to(html_dir).parts))
                  and str(p.relative_to(html_dir)) not in GENERATED_PAGES)


# --------------------------------------------------------------------------- build

def build(out: Path = DEFAULT_OUT, quiet: bool = True) -> Path:
    """Check, build and check again; return the HTML folder. Raises SystemExit on failure.

    Always a fresh build (``-E``): a few seconds, and an incremental one would keep stale
    navigation sidebars on pages whose source did not change."""
    out = Path(out).resolve()
    problems = check_notebooks()
    if problems:
        raise SystemExit("site: notebooks with error outputs (fix and re-execute them, "
                         "then commit):\n  " + "\n  ".join(problems))
    html_dir, doctrees = out / "html", out / "doctrees"
    out.mkdir(parents=True, exist_ok=True)
    from sphinx.cmd.build import build_main

    args = ["-b", "html", "-c", str(DOCS), "-d", str(doctrees),
            "-w", str(out / "warnings.txt"), "--keep-going", "-E"]
    if quiet:
        args.append("-q")
    status = build_main(args + [str(ROOT), str(html_dir)])
    if status:
        raise SystemExit(status)
    problems = check_html(html_dir)
    if problems:
        raise SystemExit("site: the built pages need the network, show errors, raw tables "
                         "or widgets without their picture:\n  "
                         + "\n  ".join(problems))
    return html_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="output folder (HTML in OUT/html; default build/site)")
    ap.add_argument("--verbose", action="store_true", help="Sphinx's progress output")
    args = ap.parse_args(argv)
    start = time.monotonic()
    html_dir = build(args.out, quiet=not args.verbose)
    took = time.monotonic() - start
    warnings = (Path(args.out).resolve() / "warnings.txt")
    n_warn = len([ln for ln in warnings.read_text().splitlines() if "WARNING" in ln]) \
        if warnings.is_file() else 0
    print(f"site: {len(pages(html_dir))} pages in {took:.1f} s"
          + (f", {n_warn} Sphinx warnings (see {warnings})" if n_warn else "")
          + f"\nopen {html_dir / 'index.html'}"
          + f"\nor serve it: python -m http.server -d {html_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
