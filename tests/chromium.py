"""The one way the browser tests start Chromium: Debian's ``/usr/bin/chromium`` driven by
Playwright (its own browser download is never used), headless, with a fresh profile and its
caches in a temporary folder. ``tests/test_browser.py`` (JupyterLab) and
``tests/test_site.py`` (the website) differ only in the window size they ask for.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def missing_requirements() -> list[str]:
    """What this machine lacks to run a browser test (empty when nothing)."""
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} not found (Debian: apt-get install -y chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package is not installed (pip install playwright)")
    return missing


def in_ci() -> bool:
    """CI is set: there a missing browser or tool fails the test instead of skipping it."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def chromium_context(tmp_path_factory, *, width: int, height: int):
    """A Playwright browser context of headless Chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    user_data = tmp_path_factory.mktemp("chromium-profile")
    home = tmp_path_factory.mktemp("chromium-home")
    # Debian's chromium keeps crash reports and caches under XDG dirs: keep them in tmp too
    env = dict(os.environ, XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"))
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(user_data), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            env=env, viewport={"width": width, "height": height})
        context.set_default_timeout(60_000)
        try:
            yield context
        finally:
            context.close()
