"""A student's side of ``make course``: a runtime-only install and a working copy.

* ``make course`` installs ``[project] dependencies`` only; the developers' tools are in the
  extras that ``make site`` (site), ``make student`` (student) and ``make test`` (dev, which
  holds the other two) install;
* the working copy (``docs/workspace.py``, what ``make course`` runs) is made once: a re-run
  keeps the student's edits and adds only what is missing; a notebook's course version is
  taken only when the student says yes, and the student's file is kept beside it;
* running every notebook of a working copy at the ``ci`` tier, and saving it there as
  JupyterLab's autosave would, leaves ``git status`` of the repository as it was: the
  committed notebooks and figures stay as committed. This is where ``make test`` runs the
  notebooks, each once: nbval (``--nbval-lax``: every cell without error, the cells marked
  ``# NBVAL_CHECK_OUTPUT`` with their committed output) runs each notebook of one working
  copy, in a temporary folder, made by the same ``main`` as ``make course`` calls, in the
  order of their names, one nbval run per notebook, so that a failure, and what a notebook
  wrote into the repository, is reported by notebook (slow).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = float(os.environ.get("SOVR_WORKSPACE_CELL_TIMEOUT", "900"))
DEV_TOOLS = ("pytest", "nbval", "playwright", "sphinx", "myst-nb", "nbgrader")

_spec = importlib.util.spec_from_file_location("workspace", ROOT / "docs" / "workspace.py")
workspace = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(workspace)


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement.strip()).group(0).lower()


def test_make_course_installs_no_developer_tools():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in meta["dependencies"]}
    assert not runtime & {_name(t) for t in DEV_TOOLS}, "a developer tool in the runtime install"
    extras = meta["optional-dependencies"]
    for extra in ("site", "student"):   # make test installs dev and counts site, student done
        assert set(extras[extra]) <= {r.split("#")[0].strip() for r in extras["dev"]}, extra
    assert {_name(t) for t in DEV_TOOLS} <= {_name(r) for r in extras["dev"]}


def test_working_copy_is_made_once_and_keeps_the_students_edits(tmp_path):
    dest = tmp_path / "work"
    first = workspace.make_workspace(dest)
    nbs = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in (dest / "notebooks").glob("*.ipynb")) == nbs
    assert sorted(first["linked"]) == sorted(workspace.LINKED)
    for name in workspace.LINKED:   # ../results and ../docs from notebooks/ are the repo's
        assert (dest / "notebooks" / ".." / name).resolve() == (ROOT / name).resolve()
    for fig in (ROOT / "notebooks" / "figures").glob("*.png"):
        assert (dest / "notebooks" / "figures" / fig.name).read_bytes() == fig.read_bytes()

    edited, deleted = dest / "notebooks" / nbs[0], dest / "notebooks" / nbs[-1]
    edited.write_text("my edits")
    deleted.unlink()
    again = workspace.make_workspace(dest)
    assert edited.read_text() == "my edits"
    assert [p.name for p in again["added"]] == [deleted.name] and deleted.is_file()
    assert again["changed"] == []


def test_refresh_asks_first_and_keeps_the_students_file(tmp_path):
    dest = tmp_path / "work"
    workspace.make_workspace(dest)
    name = sorted((ROOT / "notebooks").glob("*.ipynb"))[0].name
    mine = dest / "notebooks" / name
    mine.write_text("my edits")
    assert workspace.refresh(dest, name, ask=lambda _: "n") is None
    assert mine.read_text() == "my edits"
    kept = workspace.refresh(dest, name, ask=lambda _: "y")
    assert kept.read_text() == "my edits" and kept.parent == mine.parent
    assert mine.read_bytes() == (ROOT / "notebooks" / name).read_bytes()


def test_course_jupyter_config_turns_the_developer_extensions_off(tmp_path):
    cfg = workspace.write_jupyter_config(tmp_path / "cfg", tmp_path)
    page = json.loads((cfg / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"]["@jupyter/nbgrader"] is True
    server = json.loads((cfg / "jupyter_server_config.json").read_text())
    assert not any(server["ServerApp"]["jpserver_extensions"].values())


def _git_status() -> list[str]:
    """``git status`` of the repository, with the ignored files under ``notebooks/`` too (a
    figure saved into the committed folder is a change even where .gitignore hides it)."""
    tracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    ignored = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all",
                              "--", "notebooks"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return sorted(set(tracked.splitlines()) | {ln for ln in ignored.splitlines()
                                               if ln.startswith("!!")})


@pytest.fixture(scope="module")
def working_copy(tmp_path_factory) -> Path:
    """One working copy for the notebooks' runs, made as ``make course`` makes ``work/``."""
    dest = tmp_path_factory.mktemp("workspace") / "work"
    before = _git_status()
    assert workspace.main([str(dest), "--jupyter-config", str(dest.parent / "jupyter")]) == 0
    assert _git_status() == before, "making the working copy changed the repository"
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_running_every_notebook_in_the_working_copy_leaves_git_status_clean(working_copy, name):
    path = working_copy / "notebooks" / name
    before = _git_status()
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--color=no",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(working_copy),
         "--nbval-lax", f"--nbval-cell-timeout={CELL_TIMEOUT:g}", str(path)],
        cwd=working_copy, env={**os.environ, "SOVR_TUTORIAL_TIER": "ci"},   # and the caller's
        capture_output=True, text=True, check=False)                          # SOVR_TUTORIAL_DATA
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(new_markdown_cell("My notes."))
    nbformat.write(nb, path)   # saved with an edit, as JupyterLab's autosave would
    after = _git_status()
    assert ran.returncode == 0, \
        f"nbval, {name} in the working copy:\n{ran.stdout[-8000:]}{ran.stderr[-2000:]}"
    assert after == before, (f"running {name} in the working copy changed the repository: "
                             f"new {sorted(set(after) - set(before))}, "
                             f"gone {sorted(set(before) - set(after))}")
