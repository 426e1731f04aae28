"""A student's working copy of the course: ``python docs/workspace.py [DEST]`` (what ``make
course`` runs before it opens JupyterLab in DEST, default ``work/``, git-ignored).

The committed notebooks in ``notebooks/`` stay as committed: the student opens, runs, edits
and saves the copies, so JupyterLab's autosave and the figures a notebook saves land in the
copy, and a ``git pull`` never meets the student's edits. DEST keeps the repository's
layout, so that the notebooks' relative paths (``../results/cpu``, ``../docs/method.md``,
``figures/``) mean what they mean in the repository:

* ``DEST/notebooks/``: a copy of every file under ``notebooks/`` (the notebooks, with their
  committed outputs, and ``figures/``), made once. A re-run copies only what the copy lacks
  (a notebook new in the course, or one the student deleted) and never overwrites a file;
* ``DEST/results``, ``DEST/docs``: links to the repository's folders, which the notebooks
  read (the course's result files and the method); they follow a ``git pull``;
* ``DEST/README.md``: what the folder is.

A notebook that has changed in the course since it was copied is named on every run, with
the command that takes the new version: ``--refresh NAME`` asks first, then keeps the
student's file beside it as ``NAME.mine-<time>.ipynb`` and copies the course's. What was
copied from which source is in ``DEST/.workspace.json`` (the sha256 of each source file).

``--jupyter-config DIR`` also writes the course's Jupyter config to DIR, which ``make
course`` puts first on ``JUPYTER_CONFIG_PATH``: the developers' extensions that ``make test``
installs into the same venv (nbgrader's menus, sidebars and server extensions, the classic
notebook's "open in" menu) are off, and so are JupyterLab's news and update checks.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks"
DEFAULT_DEST = ROOT / "work"
LINKED = ("results", "docs")          # read by the notebooks as ../results, ../docs
SKIPPED = {".ipynb_checkpoints", "__pycache__"}
RECORD = ".workspace.json"
README = """# Your working copy of the course

`make course` made this folder and opens JupyterLab here. `notebooks/` is yours: run, edit
and save as you like; the course's own notebooks in the repository stay as they were, so
`git pull` brings new versions without touching your work. `results/` and `docs/` are links
to the repository's folders, which the notebooks read.

A re-run of `make course` adds notebooks that are new in the course and never overwrites
yours. When the course has changed a notebook you have a copy of, `make course` says so and
gives the command that takes the new version (yours is kept beside it).
"""

# Off in the course's JupyterLab: present only where `make test` installed the dev extra.
DISABLED_LAB_EXTENSIONS = (
    "@jupyter/nbgrader",                          # nbgrader's menu, Validate, Create Assignment
    "@jupyter-notebook/lab-extension",            # the classic notebook's "open in" menu
    "@jupyterlab/apputils-extension:announcements",   # news and update checks (no network)
)
DISABLED_SERVER_EXTENSIONS = (
    "nbgrader.server_extensions.formgrader",      # "No nbgrader_config.py file found" warnings
    "nbgrader.server_extensions.validate_assignment",
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_files(source: Path = SOURCE) -> list[Path]:
    """Every file under ``notebooks/`` that a working copy holds, relative to it."""
    return sorted(p.relative_to(source) for p in source.rglob("*")
                  if p.is_file() and not SKIPPED & set(p.relative_to(source).parts))


def _read_record(dest: Path) -> dict:
    try:
        return json.loads((dest / RECORD).read_text())
    except (OSError, ValueError):   # none yet, or damaged: changes are then not detected
        return {}


def _write_record(dest: Path, record: dict) -> None:
    (dest / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def _link(dest: Path, name: str) -> str | None:
    """``dest/name`` -> the repository's folder (a relative link); a copy where links fail."""
    target, there = ROOT / name, dest / name
    if there.exists() or there.is_symlink():
        return None
    try:
        there.symlink_to(os.path.relpath(target, dest), target_is_directory=True)
    except OSError:
        shutil.copytree(target, there)
    return name


def make_workspace(dest: Path = DEFAULT_DEST, source: Path = SOURCE) -> dict:
    """Creates or completes the working copy ``dest``; never overwrites a file there.

    Returns ``{"dest", "added", "kept", "changed"}``: the files copied now, those already
    there, and the notebooks whose course version differs from the one they were copied
    from (relative to ``notebooks/``)."""
    dest = Path(dest).resolve()
    (dest / "notebooks").mkdir(parents=True, exist_ok=True)
    record = _read_record(dest)
    added, kept, changed = [], [], []
    for rel in source_files(source):
        src, mine, key = source / rel, dest / "notebooks" / rel, rel.as_posix()
        if mine.exists():
            kept.append(rel)
            if rel.suffix == ".ipynb" and key in record and record[key] != _sha256(src):
                changed.append(rel)
            continue
        mine.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, mine)
        record[key] = _sha256(src)
        added.append(rel)
    linked = [name for name in LINKED if _link(dest, name)]
    if not (dest / "README.md").exists():
        (dest / "README.md").write_text(README)
    _write_record(dest, record)
    return {"dest": dest, "added": added, "kept": kept, "changed": changed, "linked": linked}


def refresh(dest: Path, name: str, source: Path = SOURCE, ask=input) -> Path | None:
    """Replaces the student's ``notebooks/<name>`` by the course's after asking ``ask``;
    the student's file stays beside it as ``<stem>.mine-<time>.ipynb``. Returns that path,
    or None when the answer was not yes."""
    dest = Path(dest).resolve()
    rel = Path(name if name.endswith(".ipynb") else f"{name}.ipynb")
    src, mine = source / rel, dest / "notebooks" / rel
    if not src.is_file():
        raise SystemExit(f"{rel}: not a notebook of the course ({source})")
    if mine.exists():
        kept = mine.with_name(f"{mine.stem}.mine-{time.strftime('%Y%m%d-%H%M%S')}{mine.suffix}")
        try:
            answer = ask(f"Replace your {mine} by the course's version? Yours is kept as "
                         f"{kept.name}. [y/N] ")
        except EOFError:   # nobody to ask: no
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            return None
        mine.rename(kept)
    else:
        kept = None
    shutil.copy2(src, mine)
    record = _read_record(dest)
    record[rel.as_posix()] = _sha256(src)
    _write_record(dest, record)
    return kept or mine


def write_jupyter_config(folder: Path, root: Path = DEFAULT_DEST) -> Path:
    """The course's Jupyter config in ``folder`` (for ``JUPYTER_CONFIG_PATH``), for a
    JupyterLab that serves ``root`` (the working copy)."""
    folder = Path(folder)
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    (folder / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {name: True for name in DISABLED_LAB_EXTENSIONS}}, indent=1) + "\n")
    (folder / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"jpserver_extensions": {name: False for name in DISABLED_SERVER_EXTENSIONS}},
        # /files/ (images in markdown) through the contents manager, which follows the links
        # results/ and docs/ as the file browser does; tornado's static handler refuses them
        "FileContentsManager": {"files_handler_class": "jupyter_server.files.handlers.FilesHandler",
                                "files_handler_params": {"path": str(Path(root).resolve())}},
        "LabApp": {"check_for_updates_class":
                   "jupyterlab.handlers.announcements.NeverCheckForUpdate"},
    }, indent=1) + "\n")
    return folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dest", nargs="?", type=Path, default=DEFAULT_DEST,
                   help="the working copy (default: work/ of the repository)")
    p.add_argument("--refresh", action="append", default=[], metavar="NOTEBOOK",
                   help="take the course's version of this notebook (asks first; yours is kept)")
    p.add_argument("--jupyter-config", type=Path, default=None, metavar="DIR",
                   help="also write the course's Jupyter config to DIR")
    args = p.parse_args(argv)
    for name in args.refresh:
        kept = refresh(args.dest, name)
        print(f"{name}: kept as it was" if kept is None else f"{name}: the course's version "
              f"copied; yours is {kept}")
    ws = make_workspace(args.dest)
    here = os.path.relpath(ws["dest"], Path.cwd())
    new = [str(r) for r in ws["added"] if r.suffix == ".ipynb"]
    mine = sum(r.suffix == ".ipynb" for r in ws["kept"])
    print(f"working copy {here}/: " + "; ".join(
        [f"{mine} notebook{'s' * (mine != 1)} of yours kept as they are"] * bool(mine)
        + [f"{len(new)} notebook{'s' * (len(new) != 1)} copied from notebooks/"
           + (f" ({', '.join(new)})" if mine else "")] * bool(new or not mine)))
    for rel in ws["changed"]:
        print(f"  {rel}: the course's version has changed since you copied it; to take it "
              f"(yours is kept beside it): python3 docs/workspace.py {here} --refresh {rel.stem}")
    if args.jupyter_config is not None:
        write_jupyter_config(args.jupyter_config, ws["dest"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
