"""The course website (``make site``, ``docs/``) as a reader meets it: headless Chromium.

The site is built by ``docs/build.py`` (what ``make site`` runs) into a temporary folder,
unless ``SOVR_SITE_HTML`` names an HTML folder that is already built (CI builds it with
``make site`` first and points the test at it). A ``http.server`` thread serves it on
127.0.0.1, and Playwright drives Debian's Chromium (``/usr/bin/chromium``, started by
``tests/chromium.py`` as for ``tests/test_browser.py``) through every
page reachable from the top-level ``index.html``. Each page must

* log no console error and no uncaught exception, and request nothing that fails (an
  answer of 400 or more, or a request that never completes);
* have every ``<img>`` decoded (``naturalWidth > 0``);
* have every internal link resolve: HTTP 200, and the ``#anchor`` present in the target;
* show no error output (a rendered traceback, an error or stderr traceback block, a
  MathJax error).

It also checks that every notebook in ``notebooks/`` and the results report are pages of
the site, linked from the landing page's navigation. A full-page screenshot of each page
goes to ``test-artifacts/site/`` (git-ignored).

Without Chromium or the ``playwright`` package the browser test is skipped with the reason,
except when the environment variable ``CI`` is set: there a missing tool is a failure, as
is a missing Sphinx / myst-nb.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
from chromium import chromium_context, in_ci, missing_requirements

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "site"
BUILD_TIMEOUT = float(os.environ.get("SOVR_SITE_BUILD_TIMEOUT", "900"))
ERROR_SELECTOR = (".output.traceback, .output.error, .cell_output .traceback, "
                  "mjx-merror, .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")


def _load_build_module():
    spec = importlib.util.spec_from_file_location("sovr_site_build", ROOT / "docs" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site_build = _load_build_module()


def _say(line: str):
    """Print past pytest's capture, and keep the line in test-artifacts/site/timings.txt."""
    print(f"\n[site] {line}", file=sys.__stdout__, flush=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "timings.txt", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def _skip_or_fail(reason: str):
    if in_ci():
        pytest.fail(f"CI is set, so a missing tool is a failure: {reason}")
    warnings.warn(f"site test skipped: {reason}", pytest.PytestWarning, stacklevel=2)
    pytest.skip(reason)


# --------------------------------------------------------------------------- the build

def _notebook(outputs: list[dict]) -> dict:
    return {"cells": [{"cell_type": "code", "execution_count": 1, "id": "c0", "metadata": {},
                       "outputs": outputs, "source": "1 / 0"}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_error_outputs_fail_the_build(tmp_path, monkeypatch):
    """An error output, or a traceback on stderr, is found; a warning on stderr is not; and
    build() stops on one before Sphinx runs."""
    cases = {
        "error": ([{"output_type": "error", "ename": "ZeroDivisionError",
                    "evalue": "division by zero", "traceback": []}], 1),
        "stderr-traceback": ([{"output_type": "stream", "name": "stderr",
                               "text": ["Traceback (most recent call last):\n", " ...\n",
                                        "ValueError: bad\n"]}], 1),
        "stderr-warning": ([{"output_type": "stream", "name": "stderr",
                             "text": "UserWarning: something minor\n"}], 0),
    }
    for name, (outputs, expected) in cases.items():
        path = tmp_path / f"{name}.ipynb"
        path.write_text(json.dumps(_notebook(outputs)))
        assert len(site_build.error_outputs(path)) == expected, name

    monkeypatch.setattr(site_build, "check_notebooks", lambda *a, **k: ["x.ipynb: cell 0: E"])
    with pytest.raises(SystemExit, match="error outputs"):
        site_build.build(tmp_path / "out")
    assert not (tmp_path / "out" / "html").exists()


def test_committed_notebooks_have_no_error_outputs():
    assert not site_build.check_notebooks(), site_build.check_notebooks()


def test_every_results_figure_is_on_the_site(site_html):
    """Each results/*/*.png is copied into the site (same bytes), so a page shows it."""
    on_site = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (site_html / "_images").iterdir()}
    missing = [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("results/*/*.png"))
               if hashlib.sha256(p.read_bytes()).hexdigest() not in on_site]
    assert not missing, f"figures on no page of the site (add them to docs/figures.md): {missing}"


def test_built_pages_need_no_network(site_html):
    """docs/build.py's own check, run on the site under test too (it may come prebuilt)."""
    assert not site_build.check_html(site_html), site_build.check_html(site_html)


@pytest.fixture(scope="module")
def site_html(tmp_path_factory) -> Path:
    prebuilt = os.environ.get("SOVR_SITE_HTML")
    if prebuilt:
        html = Path(prebuilt)
        assert (html / "index.html").is_file(), f"SOVR_SITE_HTML={prebuilt} has no index.html"
        return html
    missing = [m for m in ("sphinx", "myst_nb", "sphinx_book_theme")
               if importlib.util.find_spec(m) is None]
    if missing:
        _skip_or_fail(f"the site build needs {', '.join(missing)} (pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("site")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "build.py"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    took = time.monotonic() - start
    assert proc.returncode == 0, f"docs/build.py failed:\n{proc.stdout}\n{proc.stderr}"
    _say(f"built in {took:.1f} s by docs/build.py ({proc.stdout.splitlines()[0]})")
    return out / "html"


# --------------------------------------------------------------------------- the server

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_url(site_html):
    handler = functools.partial(_QuietHandler, directory=str(site_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --------------------------------------------------------------------------- the browser

@pytest.fixture(scope="module")
def browser_page(site_url, tmp_path_factory):
    missing = missing_requirements()
    if missing:
        _skip_or_fail("; ".join(missing))
    with chromium_context(tmp_path_factory, width=1280, height=900) as context:
        yield context.new_page()


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (tag == "a" and key == "name"):
                self.ids.add(value or "")


@functools.lru_cache(maxsize=None)
def _fetch(url: str) -> tuple[int, str, str]:
    """(status, content type, body if HTML) of a local URL, after redirects."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            ctype = resp.headers.get("Content-Type", "")
            body = resp.read().decode("utf-8", "replace") if "html" in ctype else ""
            return resp.status, ctype, body
    except urllib.error.HTTPError as err:
        return err.code, "", ""


@functools.lru_cache(maxsize=None)
def _ids(url: str) -> frozenset[str]:
    parser = _Ids()
    parser.feed(_fetch(url)[2])
    return frozenset(parser.ids)


def _is_page(url: str, base: str) -> bool:
    path = urlparse(url).path
    rel = path[len(urlparse(base).path):]
    return (url.startswith(base) and (path.endswith(".html") or path.endswith("/"))
            and not rel.startswith(("_sources/", "_static/", "_images/")))


_IMAGES_JS = """async () => {
  const imgs = [...document.images];
  for (const img of imgs) img.loading = 'eager';
  await Promise.all(imgs.map(img => img.decode().catch(() => null)));
  return imgs.map(img => ({src: img.currentSrc || img.src, w: img.naturalWidth,
                           complete: img.complete}));
}"""

_MATHJAX_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    return true;
  }
  return false;
}"""


def _shot_name(url: str, base: str) -> str:
    rel = urlparse(url).path[len(urlparse(base).path):] or "index.html"
    return re.sub(r"[^A-Za-z0-9_.-]+", "__", rel.removesuffix(".html")) + ".png"


def _visit(page, url: str, base: str) -> tuple[list[str], set[str], list[str]]:
    """Open one page; return (problems, pages it links to, internal link targets)."""
    problems: list[str] = []
    events: list[str] = []
    handlers = {
        "console": lambda msg: msg.type == "error" and events.append(
            f"console error: {msg.text} ({msg.location.get('url', '')})"),
        "pageerror": lambda err: events.append(f"uncaught exception: {err}"),
        "requestfailed": lambda req: events.append(
            f"request failed: {req.url} ({req.failure})"),
        "response": lambda resp: resp.status >= 400 and events.append(
            f"HTTP {resp.status}: {resp.url}"),
    }
    for name, fn in handlers.items():
        page.on(name, fn)
    try:
        page.goto(url, wait_until="load")
        with contextlib.suppress(Exception):
            page.wait_for_load_state("networkidle", timeout=15_000)
        page.evaluate(_MATHJAX_JS)
        for img in page.evaluate(_IMAGES_JS):
            if not img["w"]:
                problems.append(f"image does not decode: {img['src']}")
        for block in page.locator(ERROR_SELECTOR).all():
            problems.append("error output shown: " + block.inner_text()[:300])
        for text in page.locator(".output.stderr").all_inner_texts():
            if "Traceback" in text:
                problems.append("traceback on stderr: " + text[:300])
        hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / _shot_name(page.url, base)), full_page=True)
        time.sleep(0.2)   # late console messages
    finally:
        for name, fn in handlers.items():
            page.remove_listener(name, fn)
    problems += events
    internal = {h for h in hrefs if h.startswith(base)}
    linked_pages = {urldefrag(h)[0] for h in internal if _is_page(urldefrag(h)[0], base)}
    return problems, linked_pages, sorted(internal)


def _check_link(href: str) -> str | None:
    target, fragment = urldefrag(href)
    status = _fetch(target)[0]
    if status != 200:
        return f"link {href}: HTTP {status}"
    if fragment and unquote(fragment) not in _ids(target):
        return f"link {href}: no element with id {unquote(fragment)!r}"
    return None


def test_every_page_in_chromium(browser_page, site_url, site_html):
    page = browser_page
    for stale in ARTIFACTS.glob("*.png"):   # pictures of an earlier run would mislead
        stale.unlink()
    start = time.monotonic()
    # the top-level index.html forwards to the landing page
    page.goto(site_url + "index.html", wait_until="load")
    page.wait_for_url(re.compile(r".*/docs/index\.html$"), timeout=30_000)
    landing = page.url
    toc = set(page.evaluate(
        "() => [...document.querySelectorAll('nav.bd-docs-nav a[href]')].map(a => a.href)"))

    # (the forwarding page itself is not crawled: its refresh would race the checks)
    queue, seen, report, links = [landing], {site_url + "index.html"}, {}, set()
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        problems, linked, internal = _visit(page, url, site_url)
        report[url] = problems
        links.update(internal)
        queue += sorted(linked - seen)
    for href in sorted(links):
        problem = _check_link(href)
        if problem:
            report.setdefault("(links)", []).append(problem)

    # every notebook of the course, the results report and the method are pages of the
    # site, and the landing page's navigation lists them (a new notebook needs its line in
    # docs/index.md)
    expected = [f"notebooks/{p.stem}.html" for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    expected += ["results/README.html", "docs/method.html"]
    for rel in expected:
        assert site_url + rel in seen, f"{rel} is not reachable from the landing page"
        assert site_url + rel in toc, f"{rel} is missing from the navigation (docs/index.md)"
    assert (site_html / "results" / "README.html").is_file()

    n_pages = len([u for u in seen if not u.endswith(("genindex.html", "search.html"))
                   and u != site_url + "index.html"])
    (ARTIFACTS / "report.json").write_text(json.dumps(report, indent=1))
    _say(f"{len(seen)} pages visited ({n_pages} course pages), {len(links)} internal links "
         f"checked in {time.monotonic() - start:.1f} s")
    bad = {u: p for u, p in report.items() if p}
    assert not bad, "\n".join(f"{u}:\n  " + "\n  ".join(p) for u, p in bad.items())
