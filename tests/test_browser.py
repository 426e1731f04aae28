"""The course as a reader meets it: JupyterLab in headless Chromium, driven by Playwright.

For each interactive notebook the test starts a real ``jupyter lab`` (127.0.0.1, random
port, random token: authentication stays on), opens the notebook, runs all cells at the
``ci`` tier through the Run menu, waits for the widget, moves its slider with the keyboard
(focus the handle, press End or Home), waits for the kernel to redraw, and asserts that

* the picture changed (sha256 of the figure's <img> bytes before and after),
* the widget's label changed (e.g. "switched to OVR: xx.x% of samples"),
* no cell output shows an error (rendered stderr with a traceback, an ``error`` output in
  the saved notebook, or an error message inside the widget).

Before/after screenshots go to ``test-artifacts/browser/`` (git-ignored), together with the
server log. A tiny self-test notebook, generated into the same temporary folder, checks the
harness itself (server, kernel environment, widget rendering, keyboard, Output figures)
independently of the course notebooks.

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install -y chromium``) and the
``playwright`` Python package; Playwright's own browser download is never used. Without
them the test is skipped with the reason, except when the environment variable ``CI`` is
set: there a missing browser is a failure.

Knobs (environment): ``SOVR_BROWSER_RUN_TIMEOUT`` (seconds for "Run All Cells", default
1800), ``SOVR_BROWSER_UPDATE_TIMEOUT`` (seconds for one slider recompute, default 600).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from chromium import chromium_context, in_ci, missing_requirements

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
RUN_TIMEOUT = float(os.environ.get("SOVR_BROWSER_RUN_TIMEOUT", "1800"))
UPDATE_TIMEOUT = float(os.environ.get("SOVR_BROWSER_UPDATE_TIMEOUT", "600"))
SERVER_START_TIMEOUT = 180.0
SELFTEST_NOTEBOOK = "_browser_selftest.ipynb"
ERROR_PATTERN = re.compile(r"Traceback|\b[A-Z]\w*Error\b")
STDERR_SELECTOR = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'


# --------------------------------------------------------------------------- availability

@pytest.fixture(scope="session")
def browser_available():
    missing = missing_requirements()
    if missing:
        reason = "browser test needs: " + "; ".join(missing)
        if in_ci():
            pytest.fail(f"CI is set, so a missing browser is a failure: {reason}")
        # a warning is listed even by `pytest -q` (a skip reason only with -rs)
        warnings.warn(f"browser tests skipped: {reason}", pytest.PytestWarning, stacklevel=1)
        pytest.skip(reason)


# --------------------------------------------------------------------------- timing

@pytest.fixture
def timed(request, capsys):
    """Print (visibly, past pytest's capture) how long the test took."""
    start = time.monotonic()
    yield
    took = time.monotonic() - start
    line = f"[browser] {request.node.name}: {took:.1f} s"
    with capsys.disabled():
        print(f"\n{line}", flush=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "timings.txt", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


# --------------------------------------------------------------------------- the server

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    url: str
    token: str
    root_dir: Path
    process: subprocess.Popen
    runtime_dir: Path
    log_path: Path

    def api(self, path: str, method: str = "GET", token: str | None = "use-own"):
        token = self.token if token == "use-own" else token
        req = urllib.request.Request(self.url + path, method=method)
        if token is not None:
            req.add_header("Authorization", f"token {token}")
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def lab_url(self, notebook: str) -> str:
        # reset: a fresh layout, without the tabs an earlier test left open
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    def shutdown_kernels(self):
        with contextlib.suppress(Exception):
            for kernel in self.api("/api/kernels"):
                with contextlib.suppress(Exception):
                    self.api(f"/api/kernels/{kernel['id']}", method="DELETE")


def _settings_dir(base: Path) -> Path:
    """User settings for this server only: render every cell (no windowing, so offscreen
    cells are in the DOM) and no news / update pop-ups."""
    settings = base / "lab-settings"
    for rel, value in {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        # the test saves explicitly; an autosave in between would hide whether it did
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    }.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return settings


def _processes_mentioning(needle: str) -> list[int]:
    """PIDs whose command line mentions ``needle`` (our private runtime dir): the kernels
    of our server, should one survive it."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                pids.append(int(proc.name))
    return pids


def _die_with_parent():
    """In the child before exec: SIGTERM it should pytest itself be killed (Linux), so even
    then the server stops and shuts its kernels down."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(server: LabServer):
    server.shutdown_kernels()
    proc = server.process
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    # kernels run in sessions of their own: should one outlive the server, it is ours if
    # its command line names our private runtime dir (kernel-<id>.json lives there)
    if sys.platform.startswith("linux"):
        for pid in _processes_mentioning(str(server.runtime_dir)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _start_server(root_dir: Path, base: Path, env: dict) -> LabServer:
    """Start ``python -m jupyterlab`` on a random free port; return once /api/status answers
    with the token (and refuses without it). Raises, with the server stopped, otherwise."""
    token = secrets.token_hex(24)
    port = _free_port()
    log_path = ARTIFACTS / "jupyter-server.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root_dir}", "--ServerApp.open_browser=False",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
           "--ServerApp.terminals_enabled=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers often run as root
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_die_with_parent)
    server = LabServer(url=f"http://127.0.0.1:{port}", token=token, root_dir=root_dir,
                       process=proc, runtime_dir=Path(env["JUPYTER_RUNTIME_DIR"]),
                       log_path=log_path)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer in {SERVER_START_TIMEOUT:.0f} s:\n"
                                       f"{server.log_tail()}") from None
                time.sleep(0.5)
        # authentication is on: the same request without the token is refused
        try:
            server.api("/api/status", token=None)
        except urllib.error.HTTPError as refused:
            assert refused.code in (401, 403), refused
        else:
            raise AssertionError("jupyter lab answered /api/status without the token")
    except BaseException:
        _stop(server)
        raise
    return server


@contextlib.contextmanager
def lab_server(root_dir: Path, base: Path):
    """A JupyterLab serving ``root_dir`` (127.0.0.1, random port, random token), with the
    kernels' environment set for the ci tier; stopped (kernels included) at the end."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "SOVR_TUTORIAL_TIER": "ci",
        "SOVR_TUTORIAL_DATA": os.environ.get("SOVR_TUTORIAL_DATA")
        or str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        # a private config / data / runtime / settings / workspace: nothing of the user's
        # JupyterLab state leaks in, and nothing of ours is left in theirs
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(_settings_dir(base)),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "IPYTHONDIR": str(base / "ipython"),
    })
    env.pop("JUPYTER_TOKEN", None)
    for attempt in range(3):   # the free port may be taken between the probe and the bind
        try:
            server = _start_server(root_dir, base, env)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        _stop(server)


def _selftest_notebook() -> dict:
    """An IntSlider with a CSS class, wired to a matplotlib figure in an Output and a label:
    the shape of the course's explorers, in a few lines and no training."""
    cells = [
        "import os, sys\n"
        "print(sys.executable)\n"
        "assert os.environ.get('SOVR_TUTORIAL_TIER') == 'ci', os.environ.get('SOVR_TUTORIAL_TIER')\n"
        "assert os.environ.get('SOVR_TUTORIAL_DATA'), 'SOVR_TUTORIAL_DATA not passed to the kernel'\n"
        "assert os.environ.get('OMP_NUM_THREADS') == '1'\n"
        "import sovr_tutorial\n"
        "print('tier', sovr_tutorial.get_tier().name)",
        "%matplotlib inline\n"
        "import ipywidgets as w\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "slider = w.IntSlider(value=3, min=0, max=10, description='bins - 2',\n"
        "                     continuous_update=False)\n"
        "slider.add_class('sovr-selftest-slider')\n"
        "label = w.HTML()\n"
        "label.add_class('sovr-selftest-label')\n"
        "out = w.Output()\n"
        "out.add_class('sovr-selftest-figure')\n"
        "def draw(k):\n"
        "    with out:\n"
        "        out.clear_output(wait=True)\n"
        "        fig, ax = plt.subplots(figsize=(4, 2.5))\n"
        "        ax.hist(np.random.default_rng(k).normal(size=200), bins=k + 2)\n"
        "        ax.set_title(f'{k + 2} bins')\n"
        "        plt.show()\n"
        "    label.value = f'histogram with {k + 2} bins'\n"
        "slider.observe(lambda change: draw(change['new']), names='value')\n"
        "draw(slider.value)\n"
        "w.VBox([slider, label, out])",
    ]
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell{i}",
                   "metadata": {}, "outputs": [], "source": src} for i, src in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                    "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


@pytest.fixture(scope="module")
def lab(browser_available, tmp_path_factory):
    """One JupyterLab for the module, serving a temporary copy of notebooks/ (plus the
    self-test notebook), so the run never writes into the repository."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (root / SELFTEST_NOTEBOOK).write_text(json.dumps(_selftest_notebook(), indent=1))
    with lab_server(root, base) as server:
        yield server


@pytest.fixture(scope="module")
def browser_context(lab, tmp_path_factory):
    """Headless Debian Chromium with a fresh user-data-dir."""
    with chromium_context(tmp_path_factory, width=1400, height=1000) as context:
        yield context


# --------------------------------------------------------------------------- page helpers

_PROMPTS_JS = """() => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
  const prompts = cells.map(c => (c.querySelector('.jp-InputPrompt')?.textContent || '').trim());
  const ind = document.querySelector('.jp-Notebook-ExecutionIndicator');
  return {prompts, status: ind ? ind.getAttribute('data-status') : null};
}"""

_DIGEST_JS = """async (el) => {
  const img = el.tagName === 'IMG' ? el : el.querySelector('img');
  if (!img || !img.src) return null;
  const buf = await (await fetch(img.src)).arrayBuffer();
  const hash = await crypto.subtle.digest('SHA-256', buf);
  return [...new Uint8Array(hash)].map(b => b.toString(16).padStart(2, '0')).join('');
}"""


def _wait(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def _kernel_idle(page) -> bool:
    state = page.evaluate(_PROMPTS_JS)
    return state["status"] == "idle"


def _run_finished(page) -> dict | None:
    state = page.evaluate(_PROMPTS_JS)
    if state["status"] in ("dead", "restarting", "autorestarting"):
        raise AssertionError(f"the kernel is {state['status']} (it died during the run?)")
    running = [p for p in state["prompts"] if "*" in p]
    numbered = [p for p in state["prompts"] if re.search(r"\[\d+\]", p)]
    if state["status"] == "idle" and not running and numbered:
        return state
    return None


def _kernel_connected(lab: LabServer, notebook: str) -> bool:
    """The server has a session for the notebook whose kernel is idle and has a client."""
    for session in lab.api("/api/sessions"):
        kernel = session.get("kernel") or {}
        if (session.get("path") == notebook and kernel.get("connections", 0) >= 1
                and kernel.get("execution_state") == "idle"):
            return True
    return False


def _accept_kernel_dialog(page):
    """Should JupyterLab ask which kernel to use, take its (preselected) default."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count():
        dialog.locator("button", has_text=re.compile(r"^Select$")).click()


def _open_notebook(page, lab: LabServer, notebook: str):
    n_code = sum(c["cell_type"] == "code"
                 for c in json.loads((lab.root_dir / notebook).read_text())["cells"])
    page.goto(lab.lab_url(notebook))
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=120_000)

    def ready():
        _accept_kernel_dialog(page)
        # every code cell rendered, the kernel connected (the toolbar says "idle" before
        # the kernel's websocket is up, so ask the server too) and idle
        return (len(page.evaluate(_PROMPTS_JS)["prompts"]) == n_code
                and _kernel_connected(lab, notebook) and _kernel_idle(page))

    _wait(ready, 180, "the notebook to render and its kernel to be connected and idle")


def _run_all_cells(page):
    """Run > Run All Cells, through the menu as a reader would; returns once it started."""
    before = page.evaluate(_PROMPTS_JS)["prompts"]
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    def started():
        state = page.evaluate(_PROMPTS_JS)
        return (state["status"] == "busy" or any("*" in p for p in state["prompts"])
                or state["prompts"] != before)

    _wait(started, 30, "Run All Cells to start")


def _wait_for_run(page, timeout: float):
    # the queued cells show [*] at once; wait until none does, the kernel is idle, and it
    # stays so for a couple of seconds (between cells the kernel is briefly idle)
    deadline = time.monotonic() + timeout
    while True:
        _wait(lambda: _run_finished(page), max(1.0, deadline - time.monotonic()),
              "Run All Cells to finish", interval=1.0)
        time.sleep(2.0)
        if _run_finished(page):
            return


def _errors_on_page(page) -> list[str]:
    errors = []
    for text in page.locator(STDERR_SELECTOR).all_inner_texts():
        if ERROR_PATTERN.search(text):
            errors.append(text.strip()[-2000:])
    for text in page.locator(".jp-OutputArea-output").all_inner_texts():
        if "Error displaying widget" in text:
            errors.append(text.strip()[:500])
    return errors


def _save_and_read(page, lab: LabServer, notebook: str) -> dict:
    """Save the notebook (Ctrl+S) and read the saved copy (in the temporary root)."""
    path = lab.root_dir / notebook
    before = path.stat().st_mtime_ns
    page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    _wait(lambda: path.stat().st_mtime_ns != before, 60, f"{notebook} to be saved")
    time.sleep(0.5)
    return json.loads(path.read_text())


def _error_outputs(nb: dict) -> list[str]:
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out.get("text", ""))
                if "Traceback" in text:
                    found.append(f"cell {i} stderr: {text[-1000:]}")
    return found


def _text(locator) -> str:
    return locator.inner_text().strip() if locator.count() else ""


@dataclass
class Explorer:
    notebook: str
    slider: str          # CSS class of the slider (on the widget's root element)
    figure: str          # CSS class of the figure: an <img>, or an Output holding one
    label: str           # CSS class of the label that must change with the slider
    message: str | None  # CSS class of the widget's message area (errors, "computing ...")


def _widget_root(page, ex: Explorer):
    """The (first) output area holding the explorer: its parts are looked up inside it, and
    it is what the screenshots show."""
    return page.locator(".jp-OutputArea-output", has=page.locator(f".{ex.slider}")).first


def drive_slider(page, lab: LabServer, ex: Explorer):
    stem = Path(ex.notebook).stem
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob(f"{stem}-*"):   # pictures of an earlier run would mislead
        stale.unlink()
    try:
        _open_notebook(page, lab, ex.notebook)
        _run_all_cells(page)
        _wait_for_run(page, RUN_TIMEOUT)
        assert not _errors_on_page(page), "\n\n".join(_errors_on_page(page))

        root = _widget_root(page, ex)
        slider = root.locator(f".{ex.slider}").first
        slider.wait_for(state="visible", timeout=60_000)
        slider.scroll_into_view_if_needed()
        figure = root.locator(f".{ex.figure}").first
        label = root.locator(f".{ex.label}").first
        message = root.locator(f".{ex.message}").first if ex.message else None
        _wait(lambda: figure.evaluate(_DIGEST_JS), 120, "the first figure")
        readout = slider.locator(".widget-readout")
        value_before = _text(readout)
        label_before = _text(label)
        digest_before = figure.evaluate(_DIGEST_JS)
        time.sleep(1.0)  # let layout settle before the picture
        root.screenshot(path=str(ARTIFACTS / f"{stem}-before.png"))

        # the keyboard: focus the slider's handle, jump to the far end (one change event,
        # so one recompute; continuous_update=False sends the value once)
        handle = slider.locator(".noUi-handle").first
        at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        handle.focus()
        handle.press("Home" if at_max else "End")
        value_after = _wait(lambda: (_text(readout) != value_before) and _text(readout), 10,
                            "the slider readout to move")

        def redrawn():
            busy = message is not None and "computing" in _text(message)
            digest = figure.evaluate(_DIGEST_JS)
            if not busy and digest and digest != digest_before and _text(label) != label_before:
                return digest
            return None

        digest_after = _wait(redrawn, UPDATE_TIMEOUT, "the figure and label to be redrawn", 1.0)
        _wait(lambda: _kernel_idle(page), UPDATE_TIMEOUT, "the kernel to be idle again")
        time.sleep(1.0)
        root.screenshot(path=str(ARTIFACTS / f"{stem}-after.png"))
        label_after = _text(label)

        assert digest_after != digest_before
        assert label_after != label_before
        if message is not None:   # the explorer clears its message after a good redraw
            assert _text(message) == "", _text(message)
        assert not _errors_on_page(page), "\n\n".join(_errors_on_page(page))
        saved = _save_and_read(page, lab, ex.notebook)
        assert not _error_outputs(saved), "\n".join(_error_outputs(saved))
        return {"value": (value_before, value_after), "label": (label_before, label_after),
                "digest": (digest_before, digest_after)}
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{stem}-failure.png"), full_page=True)
        with contextlib.suppress(Exception):
            (ARTIFACTS / f"{stem}-failure.html").write_text(page.content())
        print("---- jupyter server log (tail) ----\n" + lab.log_tail())
        raise


@pytest.fixture
def page(browser_context, lab, request):
    page = browser_context.new_page()
    # uncaught JavaScript errors are kept for a person to read; they do not fail the test
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"{request.node.name}-console.log"
    log.unlink(missing_ok=True)

    def keep(kind, text):
        with open(log, "a") as f:
            f.write(f"{kind}: {text}\n")

    page.on("pageerror", lambda err: keep("pageerror", err))
    page.on("console", lambda msg: msg.type == "error" and keep("console.error", msg.text))
    yield page
    with contextlib.suppress(Exception):
        page.close()
    lab.shutdown_kernels()   # each test starts from a fresh kernel, and frees the memory


def _require_notebook(name: str):
    if not (NOTEBOOKS / name).is_file():
        pytest.fail(f"notebooks/{name} is missing")


# --------------------------------------------------------------------------- the tests

def test_harness_selftest(lab, page, timed):
    """The harness on a generated notebook: env reaches the kernel, widgets render, the
    keyboard moves a slider, an Output's matplotlib figure is redrawn."""
    result = drive_slider(page, lab, Explorer(SELFTEST_NOTEBOOK, "sovr-selftest-slider",
                                              "sovr-selftest-figure", "sovr-selftest-label", None))
    assert result["label"] == ("histogram with 5 bins", "histogram with 12 bins")


def test_threshold_explorer_in_browser(lab, page, timed):
    """05_sovr_cifar10: the switching-ratio slider redraws the margin histogram."""
    _require_notebook("05_sovr_cifar10.ipynb")
    result = drive_slider(page, lab, Explorer("05_sovr_cifar10.ipynb", "sovr-threshold-slider",
                                              "sovr-threshold-figure", "sovr-switched-label",
                                              "sovr-threshold-message"))
    for text in result["label"]:
        assert re.fullmatch(r"switched to OVR: \d+(\.\d)?% of samples", text), text


def test_eps_slider_in_browser(lab, page, timed):
    """01_adversarial_examples: the eps slider redraws the adversarial images."""
    _require_notebook("01_adversarial_examples.ipynb")
    drive_slider(page, lab, Explorer("01_adversarial_examples.ipynb", "sovr-eps-slider",
                                     "sovr-eps-figure", "sovr-eps-label", "sovr-eps-message"))


def test_toy_explorer_in_browser(lab, page, timed):
    """04_sovr: the toy explorer (the notebook's main widget) fine-tunes a copy of AT in the
    toy world at the new switching ratio and redraws its figure."""
    _require_notebook("04_sovr.ipynb")
    result = drive_slider(page, lab, Explorer("04_sovr.ipynb", "sovr-toy-slider", "sovr-toy-figure",
                                              "sovr-toy-label", "sovr-toy-message"))
    for text in result["label"]:
        assert re.fullmatch(r"switched to OVR: \d+(\.\d)?% of samples", text), text
    # the slider starts at ratio 0.4 and End moves it to 1.0: every sample gets OVR
    assert result["value"] == ("0.4", "1.0")
    assert result["label"][1] == "switched to OVR: 100.0% of samples"
