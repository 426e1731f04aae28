"""The student copies of the notebooks (``make student``, ``docs/student.py``).

For every notebook in ``notebooks/`` the student copy

* exists, is a valid notebook with the same cells as its source, and has no outputs;
* shows no solution text: no line from inside a ``### BEGIN SOLUTION`` / ``### END
  SOLUTION`` or ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS`` region of the source
  appears in the copy, unless the source also has that line outside every such region
  (``plt.show()`` may be both an answer and an ordinary line);
* has nbgrader's stub where each solution was (``raise NotImplementedError()`` in code,
  ``YOUR ANSWER HERE`` in markdown), in a cell that is not collapsed (the sources collapse
  their solution cells; the student writes in them);
* runs at the ``ci`` tier as its source does up to its first exercise cell (the first
  cell that held a solution; the whole notebook when it has none), without being run here:
  up to there its code cells are the source's, one for one and in order, and what they
  run in is the same but for the folder. The source runs in full at the ``ci`` tier, with
  nbval, in a working copy (``tests/test_workspace.py``); of the folder, every path that
  code names (a string constant, f-strings' pieces included) through ``../`` holds in the
  kit what it holds in the repository (``results/``, file for file), and so does every file
  of ``notebooks/`` it names (the kit's ``notebooks/`` holds the copies alone, no
  ``figures/``).

The regions are read here by a few lines of code of their own, not by nbgrader, so the
test checks the tool instead of repeating it. A made-up notebook with every kind of marker
checks the tool even while the course's notebooks have none.
"""
from __future__ import annotations

import ast
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCRIPT = ROOT / "docs" / "student.py"
CODE_STUB, TEXT_STUB = "raise NotImplementedError()", "YOUR ANSWER HERE"
REGIONS = {"BEGIN SOLUTION": "END SOLUTION", "BEGIN HIDDEN TESTS": "END HIDDEN TESTS"}


def split_regions(source: str) -> tuple[list[str], list[str], int]:
    """(lines inside solution / hidden-test regions, lines outside them, number of solution
    regions) of one cell's source; marker lines count as neither."""
    inside, outside, solutions, end = [], [], 0, None
    for line in source.splitlines():
        begin = next((b for b in REGIONS if b in line), None)
        if end is None and begin:
            end, solutions = REGIONS[begin], solutions + (begin == "BEGIN SOLUTION")
        elif end is not None and end in line:
            end = None
        else:
            (inside if end else outside).append(line)
    return inside, outside, solutions


def is_whole_solution_cell(cell) -> bool:
    """A cell marked as a solution in nbgrader's metadata, without markers: all answer."""
    return (cell.metadata.get("nbgrader", {}).get("solution", False)
            and split_regions(cell.source)[2] == 0)


def secret_lines(nb) -> set[str]:
    """Stripped non-empty lines that only the solutions and hidden tests of ``nb`` hold."""
    secret, public = set(), set()
    for cell in nb.cells:
        inside, outside, _ = split_regions(cell.source)
        if is_whole_solution_cell(cell):
            inside, outside = cell.source.splitlines(), []
        secret |= {ln.strip() for ln in inside if ln.strip()}
        public |= {ln.strip() for ln in outside}
    return secret - public


def exercise_cells(nb) -> list[int]:
    """Indices of the cells that hold a solution."""
    return [i for i, cell in enumerate(nb.cells)
            if split_regions(cell.source)[2] or is_whole_solution_cell(cell)]


def make_student(src: Path, out: Path) -> Path:
    """Run docs/student.py as ``make student`` does; return the folder of the copies."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--src", str(src), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "notebooks"


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    return make_student(ROOT / "notebooks", tmp_path_factory.mktemp("student") / "kit")


def _pairs(student_dir):
    for src in SOURCES:
        yield (src.name, nbformat.read(src, as_version=4),
               nbformat.read(student_dir / src.name, as_version=4))


# --------------------------------------------------------------------------- the tool itself

def test_the_tool_on_a_notebook_with_every_kind_of_marker(tmp_path):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
    solution = new_code_cell(
        "def flip_budget(margin, grad_norm):\n"
        "    ### BEGIN SOLUTION\n"
        "    return margin / grad_norm\n"
        "    ### END SOLUTION\n",
        execution_count=2, outputs=[new_output("stream", name="stdout", text="0.25\n")],
        metadata={"jupyter": {"source_hidden": True}, "tags": ["hide-input"]})
    nb = new_notebook(
        cells=[new_code_cell("TIER = 'ci'", metadata={"tags": ["parameters"]}),
               solution,
               new_markdown_cell("Why?\n\n### BEGIN SOLUTION\nSmall margins flip first.\n"
                                 "### END SOLUTION"),
               new_code_cell("assert flip_budget(1.0, 4.0) == 0.25\n### BEGIN HIDDEN TESTS\n"
                             "assert flip_budget(3.0, 1.0) == 3.0\n### END HIDDEN TESTS")],
        metadata={"kernelspec": {"name": "python3", "language": "python",
                                 "display_name": "Python 3"},
                  "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}})
    (tmp_path / "src").mkdir()
    nbformat.write(nb, tmp_path / "src" / "x.ipynb")
    copy = nbformat.read(make_student(tmp_path / "src", tmp_path / "out") / "x.ipynb", 4)
    assert [c.source for c in copy.cells] == [
        "TIER = 'ci'",
        "def flip_budget(margin, grad_norm):\n    # YOUR CODE HERE\n    " + CODE_STUB + "\n",
        "Why?\n\n" + TEXT_STUB,
        "assert flip_budget(1.0, 4.0) == 0.25",
    ]
    assert copy.cells[0].metadata["tags"] == ["parameters"]
    assert copy.cells[1].outputs == [] and copy.cells[1].execution_count is None
    assert copy.cells[1].metadata == {}   # shown: no source_hidden, no hide-input tag
    assert "widgets" not in copy.metadata and copy.metadata["kernelspec"]["name"] == "python3"
    assert secret_lines(nb) == {"return margin / grad_norm", "Small margins flip first.",
                                "assert flip_budget(3.0, 1.0) == 3.0"}
    assert exercise_cells(nb) == [1, 2]


# --------------------------------------------------------------------------- the course's copies

def test_every_notebook_has_a_student_copy_with_the_same_cells(student_dir):
    assert SOURCES, "no notebooks in notebooks/"
    assert sorted(p.name for p in student_dir.glob("*.ipynb")) == [p.name for p in SOURCES]
    for name, src, copy in _pairs(student_dir):
        nbformat.validate(copy)
        assert [c.cell_type for c in copy.cells] == [c.cell_type for c in src.cells], name
    # notebooks 03, 06 and 07 read ../results/, so the kit keeps the repository's layout
    assert (student_dir.parent / "results" / "README.md").is_file()


def test_student_copies_have_no_outputs(student_dir):
    for name, _, copy in _pairs(student_dir):
        for i, cell in enumerate(copy.cells):
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name} cell {i}"
        assert "widgets" not in copy.metadata, f"{name}: saved widget state"


def test_no_solution_text_leaks_into_the_student_copies(student_dir):
    for name, src, copy in _pairs(student_dir):
        shown = {ln.strip() for cell in copy.cells for ln in cell.source.splitlines()}
        leaked = sorted(secret_lines(src) & shown)
        assert not leaked, f"{name}: solution lines in the student copy: {leaked}"
        markers = [b for cell in copy.cells for b in (*REGIONS, *REGIONS.values())
                   if b in cell.source]
        assert not markers, f"{name}: markers left in the student copy: {markers}"


def test_every_solution_became_a_stub(student_dir):
    for name, src, copy in _pairs(student_dir):
        for i in exercise_cells(src):
            stub = CODE_STUB if src.cells[i].cell_type == "code" else TEXT_STUB
            want = max(1, split_regions(src.cells[i].source)[2])
            assert copy.cells[i].source.count(stub) == want, f"{name} cell {i}"
            assert not copy.cells[i].metadata.get("jupyter", {}).get("source_hidden"), \
                f"{name} cell {i}: the exercise cell is collapsed"
            assert "hide-input" not in copy.cells[i].metadata.get("tags", []), f"{name} cell {i}"


def test_the_prose_of_a_student_copy_describes_the_stub_it_holds(student_dir):
    """The course's prose says a collapsed solution follows each exercise; a student copy
    says the cell raises NotImplementedError until the student writes the answer there."""
    rewritten = 0
    for name, src, copy in _pairs(student_dir):
        prose = [c.source for c in copy.cells if c.cell_type == "markdown"]
        for words in ("holds a solution", "collapsed (click", "collapsed (expand"):
            assert not any(words in s for s in prose), f"{name}: '{words}' in a student copy"
        said = sum("holds a solution" in c.source for c in src.cells if c.cell_type == "markdown")
        rewritten += said
        assert sum("raises `NotImplementedError` until you replace" in s for s in prose) == said
    assert rewritten >= 6   # one exercise section per notebook but 04


def named_paths(sources: list[str]) -> set[str]:
    """The string constants (f-strings' pieces included) of some code cells, IPython's
    magics read as the calls they stand for."""
    from IPython.core.inputtransformer2 import TransformerManager
    python = TransformerManager()
    return {node.value for source in sources
            for node in ast.walk(ast.parse(python.transform_cell(source)))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def same_tree(a: Path, b: Path) -> bool:
    """Two files with the same bytes, or two folders with the same files with the same bytes."""
    if a.is_file() or b.is_file():
        return a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)
    files = [sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file()) for d in (a, b)]
    return (a.is_dir() and b.is_dir() and files[0] == files[1]
            and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files[0]))


def test_reading_the_paths_that_the_code_names(tmp_path):
    assert named_paths(['%matplotlib inline\nRESULTS = "../results/cpu"',
                        'open(f"../docs/{name}.md")']) == {
        "matplotlib", "inline", "../results/cpu", "../docs/", ".md"}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.json").write_text("1")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.json").write_text("1")
    assert same_tree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "x.json").write_text("2")
    assert not same_tree(tmp_path / "a", tmp_path / "b")
    assert not same_tree(tmp_path / "a", tmp_path / "missing")


@pytest.mark.parametrize("name", [p.name for p in SOURCES])
def test_student_copy_up_to_its_first_exercise_is_the_code_that_nbval_runs(student_dir, name):
    """Up to its first exercise (all of it without one) the copy's code cells are the
    source's, which tests/test_workspace.py runs in full with nbval at the ci tier; the kit
    keeps the repository's layout for every path that code names through ``../``."""
    src = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    copy = nbformat.read(student_dir / name, as_version=4)
    first = (exercise_cells(src) or [len(src.cells)])[0]
    code = [c.source for c in src.cells[:first] if c.cell_type == "code"]
    assert [c.source for c in copy.cells[:first] if c.cell_type == "code"] == code, \
        f"{name}: before its first exercise the student copy's code is not the source's"
    kit = student_dir.parent
    for named in sorted(named_paths(code)):
        parts = Path(named).parts
        if parts[:1] == ("..",):   # beside notebooks/: results/ (a copy in the kit), docs/, ...
            assert len(parts) > 1, f"{name} names {named!r}, the whole repository"
            here, there = ROOT / parts[1], kit / parts[1]
        elif os.path.isfile(ROOT / "notebooks" / named):   # a file of notebooks/ itself
            here, there = ROOT / "notebooks" / named, student_dir / named
        else:
            continue
        assert same_tree(here, there), \
            f"{name} names {named}: the kit's {there.relative_to(kit)} is not the repository's"
