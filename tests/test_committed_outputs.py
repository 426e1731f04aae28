"""The committed notebooks are what a run of them produced: every code cell executed, top to
bottom, in one kernel; a provenance footer at the end; no path of the machine that ran them."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# absolute paths a machine leaves in an output (a home, a scratch folder, a checkout)
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:home|root|tmp|work|Users|private|var/folders)/[\w.-]+")


def _outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        for kind, value in out.get("data", {}).items():
            if kind.startswith("text/"):
                parts.append("".join(value))
        parts.append("".join(out.get("traceback", [])))
    return "\n".join(parts)


def _code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_ran_once_top_to_bottom(path):
    counts = [c.get("execution_count") for c in _code_cells(path)]
    assert None not in counts, f"{path.name}: cells {[i for i, n in enumerate(counts) if n is None]} never ran"
    assert counts == list(range(1, len(counts) + 1)), \
        f"{path.name}: execution counts {counts} are not one run from the top"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_output_is_an_error_and_the_last_is_the_footer(path):
    cells = _code_cells(path)
    errors = [i for i, c in enumerate(cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert not errors, f"{path.name}: code cells {errors} end in an error"
    assert "Provenance of the outputs above." in _outputs_text(cells[-1]), \
        f"{path.name}: the last cell's output is not the provenance footer"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_hold_no_machine_path(path):
    found = sorted({m.group(0) for c in _code_cells(path) for m in MACHINE_PATH.finditer(_outputs_text(c))})
    assert not found, f"{path.name}: outputs name paths of the machine that ran them: {found[:5]}"


def test_the_path_check_can_fail():
    cell = {"outputs": [{"text": "read from /home/ana/data/train.zip"}]}
    assert MACHINE_PATH.search(_outputs_text(cell))
    assert not MACHINE_PATH.search(_outputs_text({"outputs": [{"text": "$SOVR_TUTORIAL_DATA/train.zip, 1/255"}]}))
