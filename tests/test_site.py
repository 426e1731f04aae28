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
  MathJax error);
* show no markdown table as raw text (a ``| --- |`` row outside code: myst-nb renders a
  ``display(Markdown(...))`` output as CommonMark, which has no tables, unless
  ``nb_render_markdown_format`` says otherwise);
* show a picture for every widget: each widget output of the notebook (not a progress bar,
  listed by ``docs/build.py``'s ``widget_outputs``) has its ``.widget-picture`` with a decoded
  image, and nothing on the page stands for a widget without one.

Every page is opened as on a first visit (its ``localStorage`` emptied before its scripts
run), so an error a theme logs only when it has nothing stored is seen on every page. The
same crawl is made over ``file://`` (README tells readers to open ``index.html`` directly),
with the same checks except the links' HTTP status.

It also checks that every notebook in ``notebooks/`` and the results report are pages of
the site, linked from the landing page's navigation. A full-page screenshot of each page
goes to ``test-artifacts/site/`` (git-ignored).

Without Chromium or the ``playwright`` package the browser test is skipped with the reason,
except when the environment variable ``CI`` is set: there a missing tool is a failure, as
is a missing Sphinx / myst-nb.
"""
from __future__ import annotations

import base64
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
# a separator row of a pipe table left as text: | --- | or |:---:|, or | — | once Sphinx's
# smartquotes have turned the dashes of a paragraph into an em dash
RAW_TABLE = r"\|\s*:?(?:-{3,}|[\u2013\u2014][-\u2013\u2014]*):?\s*\|"
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


def _widget_notebook() -> dict:
    """A notebook with an explorer (slider, label, picture) and a tqdm bar, as saved."""
    png = base64.b64encode(b"\x89PNG fake").decode()

    def model(name, **state):
        return {"model_name": name, "state": state}

    state = {
        "box": model("VBoxModel", _dom_classes=["my-explorer"],
                     children=["IPY_MODEL_slider", "IPY_MODEL_label", "IPY_MODEL_img"]),
        "slider": model("IntSliderModel", description="eps (/255)", value=8),
        "label": model("HTMLModel", value="eps = 8/255: <b>accuracy</b> 1.6%"),
        "img": {**model("ImageModel", format="png"),
                "buffers": [{"path": ["value"], "encoding": "base64", "data": png}]},
        "bar": model("HBoxModel", children=["IPY_MODEL_progress"]),
        "progress": model("FloatProgressModel", value=3),
    }
    nb = _notebook([{"output_type": "display_data", "metadata": {},
                     "data": {site_build.WIDGET_VIEW: {"model_id": mid}, "text/plain": "VBox()"}}
                    for mid in ("bar", "box")])
    nb["metadata"]["widgets"] = {site_build.WIDGET_STATE: {"state": state}}
    return nb


def test_build_checks_tables_and_widget_pictures(tmp_path):
    """docs/build.py's own checks, without a browser: a markdown table left as a paragraph
    (its dashes made an em dash by smartquotes) is found, code and real tables are not; a
    notebook's widgets are listed with their saved picture and setting (progress bars are
    not), and a page without a widget's picture fails."""
    page = ("<p>| a | b |\n| \u2014 | \u2014 |\n| 1 | 2 |</p><pre>| --- | --- |</pre>"
            "<table><tr><td>---</td></tr></table><p>a | b, and -- or --- |</p>")
    assert site_build.raw_tables(page) == ["| a | b |"]

    nb_path = tmp_path / "notebooks" / "x.ipynb"
    nb_path.parent.mkdir()
    nb_path.write_text(json.dumps(_widget_notebook()))
    (w,) = site_build.widget_outputs(nb_path)
    assert (w["cell"], w["kind"], w["picture"]) == (0, "my-explorer", b"\x89PNG fake")
    assert w["setting"] == "eps (/255) = 8" and w["text"] == ["eps = 8/255: accuracy 1.6%"]

    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "notebooks" / "x.html").write_text('<div class="widget-note"><p>a note</p></div>')
    assert len(site_build.missing_widget_pictures(html, root=tmp_path)) == 1
    (html / "_images").mkdir()
    (html / "_images" / "x.png").write_bytes(b"png")
    (html / "notebooks" / "x.html").write_text(
        '<div class="widget-picture widget-cell-0 docutils container">\n'
        '<img alt="a" src="../_images/x.png" />\n</div>')
    assert site_build.missing_widget_pictures(html, root=tmp_path) == []


def test_committed_notebooks_have_no_error_outputs():
    assert not site_build.check_notebooks(), site_build.check_notebooks()


def test_every_results_figure_is_on_the_site(site_html):
    """Each results/*/*.png is copied into the site (same bytes), so a page shows it."""
    on_site = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (site_html / "_images").iterdir()}
    missing = [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("results/*/*.png"))
               if hashlib.sha256(p.read_bytes()).hexdigest() not in on_site]
    assert not missing, f"figures on no page of the site (add them to docs/figures.md): {missing}"


def test_built_pages_need_no_network(site_html):
    """docs/build.py's own check, run on the site under test too (it may come prebuilt): no
    remote resource, no rendered traceback, no markdown table as text, no widget without its
    picture."""
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
        page = context.new_page()
        # every page a first visit: what the theme stored on one page must not hide an error
        # another page would log in a browser that keeps file:// pages apart
        page.add_init_script("try { localStorage.clear(); sessionStorage.clear(); } catch (e) {}")
        yield page


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


_RAW_TABLES_JS = """(pattern) => {
  const re = new RegExp(pattern);
  return [...document.querySelectorAll('p, li, dd, dt, td, th, blockquote, h1, h2, h3, h4')]
    .filter(el => !el.closest('pre, code, script, style') && re.test(el.textContent))
    .filter(el => ![...el.children].some(c => re.test(c.textContent) && c.matches('p, li')))
    .map(el => el.textContent.trim().split('\\n')[0].slice(0, 120));
}"""

# what stands for a widget on a page: the build's picture or note, or a widget view left as it was
_WIDGETS_JS = """() => [...document.querySelectorAll(
    '.widget-picture, .widget-note, .jupyter-widgets, ' +
    'script[type="application/vnd.jupyter.widget-view+json"]')]
  .filter(el => !el.parentElement.closest('.widget-picture, .widget-note, .jupyter-widgets'))
  .map(el => ({classes: el.className || el.tagName.toLowerCase(),
               pictures: [...el.querySelectorAll('img')].filter(i => i.naturalWidth > 0).length,
               text: el.textContent.trim().slice(0, 100)}))"""


def _notebook_widgets(url: str, base: str) -> list[dict]:
    """The widget outputs of the notebook a page renders (none for other pages)."""
    rel = urlparse(url).path[len(urlparse(base).path):]
    if not re.fullmatch(r"notebooks/[^/]+\.html", rel):
        return []
    source = ROOT / "notebooks" / (Path(rel).stem + ".ipynb")
    return site_build.widget_outputs(source) if source.is_file() else []


def _widget_problems(page, url: str, base: str) -> list[str]:
    problems = []
    for w in page.evaluate(_WIDGETS_JS):
        if not w["pictures"]:
            problems.append(f"widget output without its picture ({w['classes']}): {w['text']!r}")
    for w in _notebook_widgets(url, base):
        shown = page.locator(f".widget-picture.widget-cell-{w['cell']} img").evaluate_all(
            "imgs => imgs.filter(i => i.naturalWidth > 0).length")
        if not shown:
            problems.append(f"cell {w['cell']} ({w['cell_id']}): the widget {w['kind']} has no "
                            f"picture on the page")
    return problems


def _shot_name(url: str, base: str) -> str:
    rel = urlparse(url).path[len(urlparse(base).path):] or "index.html"
    return re.sub(r"[^A-Za-z0-9_.-]+", "__", rel.removesuffix(".html")) + ".png"


def _visit(page, url: str, base: str, shots: bool = True
           ) -> tuple[list[str], set[str], list[str]]:
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
        tables = page.evaluate(_RAW_TABLES_JS, RAW_TABLE)
        if tables:
            problems.append(f"{len(tables)} markdown table(s) shown as raw text, e.g. "
                            f"{tables[0]!r}")
        problems += _widget_problems(page, url, base)
        hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        if shots:
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


def _crawl(page, landing: str, base: str, shots: bool = True):
    """Visit every page reachable from ``landing``; return (pages seen, problems by page,
    internal links). The forwarding page ``index.html`` itself is not crawled: its refresh
    would race the checks."""
    queue, seen, report, links = [landing], {base + "index.html"}, {}, set()
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        problems, linked, internal = _visit(page, url, base, shots=shots)
        report[url] = problems
        links.update(internal)
        queue += sorted(linked - seen)
    return seen, report, links


def _summary(report: dict) -> str:
    """The problems counted by kind, for the log: raw tables, console errors (with their
    distinct texts), widgets without a picture, everything else."""
    tables = errors = widgets = stand_ins = other = 0
    texts: set[str] = set()
    for problems in report.values():
        for p in problems:
            if "markdown table(s) shown as raw text" in p:
                tables += int(p.split()[0])
            elif p.startswith(("console error", "uncaught exception")):
                errors += 1
                texts.add(re.sub(r" \([^()]*\)$", "", p))
            elif "has no picture on the page" in p:
                widgets += 1
            elif "without its picture" in p:
                stand_ins += 1
            else:
                other += 1
    return (f"raw tables {tables}, console errors {errors}"
            + (f" ({'; '.join(sorted(texts))})" if texts else "")
            + f", notebook widgets without a picture {widgets}, widget stand-ins without an"
            f" image {stand_ins}, other problems {other}")


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

    seen, report, links = _crawl(page, landing, site_url)
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
         f"checked in {time.monotonic() - start:.1f} s; {_summary(report)}")
    bad = {u: p for u, p in report.items() if p}
    assert not bad, "\n".join(f"{u}:\n  " + "\n  ".join(p) for u, p in bad.items())


def test_every_page_over_file_url(browser_page, site_html):
    """The site opened as files, as README suggests: the top-level index.html forwards to the
    landing page, and every page reachable from it passes the same checks as over HTTP (no
    console error, no failed load, every image decoded, no raw table, every widget's
    picture). Links are checked over HTTP only."""
    page = browser_page
    base = Path(site_html).resolve().as_uri() + "/"
    start = time.monotonic()
    page.goto(base + "index.html", wait_until="load")
    page.wait_for_url(re.compile(r".*/docs/index\.html$"), timeout=30_000)
    seen, report, _ = _crawl(page, page.url, base, shots=False)
    for rel in [f"notebooks/{p.stem}.html" for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]:
        assert base + rel in seen, f"{rel} is not reachable from the landing page over file://"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report-file.json").write_text(json.dumps(report, indent=1))
    _say(f"file://: {len(seen) - 1} pages visited in {time.monotonic() - start:.1f} s; "
         f"{_summary(report)}")
    bad = {u: p for u, p in report.items() if p}
    assert not bad, "\n".join(f"{u}:\n  " + "\n  ".join(p) for u, p in bad.items())
