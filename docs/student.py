"""Student copies of the notebooks: ``python docs/student.py`` (what ``make student`` runs).

The source notebooks in ``notebooks/`` hold the solutions between nbgrader's markers. Each
is passed through nbconvert with nbgrader's own preprocessors, as ``nbgrader
generate_assignment`` would, without its course folder or its database:

* ``ClearSolutions``: every region from a ``### BEGIN SOLUTION`` line to its
  ``### END SOLUTION`` line becomes ``# YOUR CODE HERE`` / ``raise NotImplementedError()``
  (code cells, indented like the marker) or ``YOUR ANSWER HERE`` (markdown cells); a cell
  that nbgrader's cell toolbar marked as a solution cell and that has no markers is replaced
  whole;
* ``ClearHiddenTests``: every region from ``### BEGIN HIDDEN TESTS`` to
  ``### END HIDDEN TESTS`` is removed;
* ``ClearOutput``: outputs, execution counts and run timestamps go (an output can show an
  answer); the saved widget state in the notebook's metadata goes too, for the same reason.

One step of our own comes first: a cell that holds a solution is shown again. The source
notebooks collapse those cells (``source_hidden``, and the ``hide-input`` tag for the
website) so that a reader does not see the answer by accident; in the student copy the same
cell is where the student writes, so it must be open.

Cells need no nbgrader metadata: the markers are enough (``enforce_metadata`` off, which
nbgrader documents as the setting for generating student versions only). A notebook without
markers comes out as its source with the outputs cleared.

Output (``--out``, default ``build/student``): ``notebooks/*.ipynb``, the student copies,
and a copy of ``results/``, because notebooks 03, 06 and 07 read ``../results/...``: the folder
keeps the repository's layout, so a teacher can hand it out as it is (the course package
must be installed, as ``make course`` does), and a ``README.md`` that says so. The folder is
replaced on every run; a non-empty folder without that README is never removed.
Prints one line per notebook: how many solution regions and hidden-test regions it had.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import nbformat
from nbconvert.exporters import NotebookExporter
from nbconvert.preprocessors import ClearMetadataPreprocessor, Preprocessor
from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "build" / "student"
BEGIN_SOLUTION, BEGIN_HIDDEN = "BEGIN SOLUTION", "BEGIN HIDDEN TESTS"   # nbgrader's defaults
README_TITLE = "# Student copies of the sovr-tutorial notebooks"
README = f"""{README_TITLE}

Made by `make student` (docs/student.py) from the course's notebooks: solutions replaced by
`raise NotImplementedError()` or "YOUR ANSWER HERE", hidden tests removed, outputs cleared.
`results/` is a copy of the course's results, which notebooks 03, 06 and 07 read.

Install the course package first (in its repository: `make course`, which picks the CPU build of
torch on machines without a GPU), then open these notebooks with `jupyter lab notebooks/`.
"""


class ShowExercises(Preprocessor):
    """Opens every cell that holds a solution: no ``source_hidden``, no ``hide-input`` tag."""

    def preprocess_cell(self, cell, resources, index):
        if BEGIN_SOLUTION in cell.source or cell.metadata.get("nbgrader", {}).get("solution"):
            meta = cell.metadata
            meta.get("jupyter", {}).pop("source_hidden", None)
            if meta.get("jupyter") == {}:
                del meta["jupyter"]
            if "hide-input" in meta.get("tags", []):
                meta["tags"] = [t for t in meta["tags"] if t != "hide-input"]
                if not meta["tags"]:
                    del meta["tags"]
        return cell, resources


#: What the course's prose says about the solutions, and what a student copy says instead:
#: there the solution cells are stubs that raise NotImplementedError, not collapsed answers.
STUDENT_PROSE = (
    (re.compile(r"The cell after (?:the|this) statement holds a solution,\s+collapsed\s+\(expand"
                r"\s+it\s+only\s+after\s+trying;\s+`make student`\s+writes\s+copies\s+(?:of\s+the"
                r"\s+notebooks\s+)?without\s+solutions\)[.;]\s+[Ww]rite\s+your\s+own\s+version\s+in"
                r"\s+a\s+new\s+cell(?:\s+below\s+it)?,"),
     "The cell after the statement is yours: it raises `NotImplementedError` until you replace\n"
     "that line with your code. Write it there,"),
    (re.compile(r"The solutions\s+sit in the notebooks, collapsed \(click the cell to expand it\),"
                r"\s+between nbgrader's solution\s+markers; `make student` writes copies without"
                r"\s+them\."),
     "In this copy the solutions are taken out: each exercise's cell raises\n"
     "`NotImplementedError` until you write your answer there."),
)


class StudentProse(Preprocessor):
    """Rewrites the prose that promises a collapsed solution: a student copy has a stub."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown":
            for pattern, text in STUDENT_PROSE:
                cell.source = pattern.sub(text, cell.source)
        return cell, resources


def exporter() -> NotebookExporter:
    """nbconvert's notebook exporter with nbgrader's student-version preprocessors."""
    config = Config()
    config.ClearSolutions.enforce_metadata = False
    config.ClearHiddenTests.enforce_metadata = False
    config.ClearOutput.remove_metadata_fields = {"collapsed", "scrolled", "execution"}
    # the notebook's own metadata: keep the kernel and language, drop the widget state
    config.ClearMetadataPreprocessor.clear_cell_metadata = False
    config.ClearMetadataPreprocessor.preserve_nb_metadata_mask = {"kernelspec", "language_info"}
    ex = NotebookExporter(config=config)
    for pre in (ShowExercises, StudentProse, ClearSolutions, ClearHiddenTests, ClearOutput,
                ClearMetadataPreprocessor):
        ex.register_preprocessor(pre, enabled=True)
    return ex


def count_markers(notebook: Path) -> tuple[int, int]:
    """(solution regions, hidden-test regions) in a source notebook."""
    nb = nbformat.read(notebook, as_version=4)
    lines = [ln for cell in nb.cells for ln in cell.source.splitlines()]
    return (sum(BEGIN_SOLUTION in ln for ln in lines), sum(BEGIN_HIDDEN in ln for ln in lines))


def generate(src: Path = ROOT / "notebooks", out: Path = DEFAULT_OUT,
             results: Path | None = ROOT / "results") -> list[Path]:
    """Write the student copy of every ``src/*.ipynb`` to ``out/notebooks/`` (and copy
    ``results`` to ``out/results`` unless it is None); return the copies' paths."""
    src, out = Path(src), Path(out)
    sources = sorted(src.glob("*.ipynb"))
    if not sources:
        raise SystemExit(f"student: no notebooks in {src}")
    if out.exists() and any(out.iterdir()):
        readme = out / "README.md"
        if not (readme.is_file() and readme.read_text(encoding="utf-8").startswith(README_TITLE)):
            raise SystemExit(f"student: {out} is not empty and was not made by this script; "
                             "choose another --out")
        shutil.rmtree(out)
    (out / "notebooks").mkdir(parents=True)
    (out / "README.md").write_text(README, encoding="utf-8")
    ex, written = exporter(), []
    for nb in sources:
        try:
            body, _ = ex.from_filename(str(nb))
        except RuntimeError as err:   # nbgrader's message for unpaired or nested markers
            raise SystemExit(
                f"student: {nb}: {err}. nbgrader reads every line that contains "
                f"'{BEGIN_SOLUTION}' or '{BEGIN_HIDDEN}' (or their END) as a marker, in "
                "markdown cells too, so prose about the markers must not spell them out") from None
        target = out / "notebooks" / nb.name
        target.write_text(body, encoding="utf-8")
        written.append(target)
        solutions, hidden = count_markers(nb)
        print(f"{nb.name}: {solutions} solution regions, {hidden} hidden-test regions")
    if results is not None and Path(results).is_dir():
        shutil.copytree(results, out / "results")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT / "notebooks",
                    help="folder of source notebooks (default notebooks/)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="output folder, replaced (default build/student)")
    args = ap.parse_args(argv)
    written = generate(args.src, args.out)
    print(f"student: {len(written)} notebooks in {args.out / 'notebooks'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
