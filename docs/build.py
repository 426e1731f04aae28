"""Build the course website: ``python docs/build.py`` (what ``make site`` runs).

1. Every notebook the site shows is checked for error outputs (an ``error`` output, or a
   traceback on stderr). One is enough to fail the build: the site shows the committed
   outputs, so a broken run would be published as it is. (Sphinx's ``-W`` would also turn
   unrelated warnings into failures; this check is aimed at exactly the broken outputs.)
2. Sphinx with myst-nb renders ``docs/``, ``notebooks/`` and ``results/README.md`` from the
   repository root (configuration: ``docs/conf.py``), execution off: nothing is re-run.
3. The result is checked for anything that would need the network in the reader's browser
   (a script, stylesheet, font or image from another host) and for rendered tracebacks.

Prints the build time and the page count. Output: ``build/site/html`` (``--out`` to change),
Sphinx's cache in ``build/site/doctrees``, its warnings in ``build/site/warnings.txt``.
Exit status 0 on success, 1 on a failed check, Sphinx's status if Sphinx failed.
"""
from __future__ import annotations

import argparse
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


def check_html(html_dir: Path) -> list[str]:
    """Remote resources in any page (the site must work offline), rendered tracebacks, and
    CSS that pulls from another host (@import / url() with http(s) or //)."""
    problems = []
    for page in sorted(html_dir.rglob("*.html")):
        if "_sources" in page.parts:
            continue
        parser = _Resources()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        rel = page.relative_to(html_dir)
        problems += [f"{rel}: loads {u} from another host" for u in parser.loads if _is_remote(u)]
        problems += [f"{rel}: shows an error output {e}" for e in parser.errors]
    for css in sorted(html_dir.rglob("*.css")):
        text = css.read_text(encoding="utf-8", errors="replace")
        for m in re.finditer(r"(?:@import\s+|url\()\s*['\"]?((?:https?:)?//[^'\")\s]+)", text):
            problems.append(f"{css.relative_to(html_dir)}: pulls {m.group(1)}")
    return problems


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
        raise SystemExit("site: the built pages need the network or show errors:\n  "
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
