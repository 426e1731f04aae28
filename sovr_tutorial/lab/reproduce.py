"""Re-run a result file's recorded command and compare what comes out, bit for bit.

    python -m sovr_tutorial.lab.reproduce results/cpu/sovr-r0.4-s0.json

A result file of the runner (:mod:`sovr_tutorial.lab.experiments`) records the command that
made it, the commit of the code (``+dirty`` with the sha256 of the diff when the tree had
changes), the precision it trained in, the thread count and the data's sha256. This module
checks that this checkout and machine match those, re-runs that one run of the command into
a scratch folder (the checkpoint is not shipped again) and compares the new file with the
recorded one: the per-image correctness bits, the accuracies, AutoAttack's robust accuracy
and the training history (all but the seconds). Same code, data, precision and threads on
the same kind of CPU should give the same bits; a difference is reported, never smoothed.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from ..devices import pick_device, resolve_precision
from ..paths import base
from .experiments import git_commit, git_diff_sha256

MODULE = "sovr_tutorial.lab.experiments"
#: what is compared besides per_image (history entries without their seconds)
COMPARED = ("clean_acc", "pgd_acc_on_aa_subset", "robust_train_acc")


class ReproduceError(RuntimeError):
    """The checkout or machine cannot reproduce the file (other code, precision or data)."""


def _same_code(recorded: dict) -> str | None:
    """None when this checkout's code is the recorded one, else why not."""
    commit, now = recorded.get("git_commit"), git_commit()
    if not commit:
        return "the file records no commit (made before commits were recorded)"
    if commit != now:
        plain = commit.split("+")[0]
        return (f"the file was made at {commit}, this checkout is {now}: reproduce it in a "
                f"checkout of that commit (git worktree add ../at-{plain[:7]} {plain})")
    if commit.endswith("+dirty") and recorded.get("git_diff_sha256") != git_diff_sha256():
        return "the file was made from a dirty tree whose diff is not this tree's diff"
    return None


def rerun_argv(result: dict, out: Path, runs: Path) -> list[str]:
    """The recorded command's arguments narrowed to this one run, into ``out`` and ``runs``."""
    words = shlex.split(result["command"])
    if words[:3] != ["python", "-m", MODULE]:
        raise ReproduceError(f"not a command of {MODULE}: {result['command']!r}")
    seed = int(result["seed"])
    slug = result["run"][: -len(f"-s{seed}")]
    argv = [w for w in words[3:] if w != "--ship"]
    # argparse keeps the last of a repeated option: these narrow the command to one run
    return argv + ["--methods", slug, "--seeds", str(seed), "--out", str(out),
                   "--runs", str(runs), "--no-progress"]


def _history(result: dict) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in result["history"]]


def compare(recorded: dict, new: dict) -> list[str]:
    """What differs between two result files of the same run (empty: nothing)."""
    diffs = []
    for key, bits in recorded.get("per_image", {}).items():
        other = new.get("per_image", {}).get(key)
        if other != bits:
            n = sum(a != b for a, b in zip(bits, other or "")) if other else len(bits)
            diffs.append(f"per_image[{key}]: {n} of {len(bits)} images differ")
    pgd = [k for k in recorded if k.startswith("pgd") and k.endswith("_acc")]
    for key in (*COMPARED, *pgd):
        if recorded.get(key) != new.get(key):
            diffs.append(f"{key}: {recorded.get(key)} recorded, {new.get(key)} now")
    aa_old, aa_new = recorded.get("autoattack", {}), new.get("autoattack", {})
    if aa_old.get("robust") != aa_new.get("robust"):
        diffs.append(f"autoattack robust: {aa_old.get('robust')} recorded, "
                     f"{aa_new.get('robust')} now")
    if _history(recorded) != _history(new):
        diffs.append("history (training curves) differ")
    return diffs


def reproduce(path, *, work=None, force: bool = False) -> dict:
    """Re-run the run of result file ``path`` and compare (see the module docstring).

    ``work``: the scratch folder (default: a temporary one). ``force``: run even where the
    code, precision or data do not match (the comparison then says what that changed).
    Returns {"run", "identical", "differences", "checks", "new_file"}; raises
    :class:`ReproduceError` where the file cannot be reproduced here and ``force`` is off.
    """
    path = Path(path)
    recorded = json.loads(path.read_text())
    env = recorded.get("environment", {})
    problems = []
    why = _same_code(env)
    if why:
        problems.append(why)
    precision = resolve_precision(recorded["tier"].get("precision", "fp32"), pick_device(None))
    if recorded.get("precision") and recorded["precision"] != precision:
        problems.append(f"the file trained in {recorded['precision']}; here the tier's "
                        f"precision resolves to {precision} (another kind of CPU)")
    if problems and not force:
        raise ReproduceError(f"{path}: " + "; ".join(problems))
    work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="reproduce-"))
    out, runs = work / "results", work / "runs"
    argv = rerun_argv(recorded, out, runs)
    child = dict(os.environ)
    if env.get("torch_threads"):   # the recorded thread count: reductions split by threads
        child["OMP_NUM_THREADS"] = str(env["torch_threads"])
    subprocess.run([sys.executable, "-m", MODULE, *argv], cwd=base(), env=child, check=True)
    new_path = out / path.name
    new = json.loads(new_path.read_text())
    diffs = compare(recorded, new)
    if new.get("data", {}).get("sha256") != recorded.get("data", {}).get("sha256"):
        diffs.insert(0, "the data's sha256 differs: another copy of CIFAR-10")
    return {"run": recorded["run"], "identical": not diffs, "differences": diffs,
            "checks": problems, "new_file": str(new_path)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {__name__}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="result files of the runner")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: temporary)")
    p.add_argument("--force", action="store_true",
                   help="run even where commit, precision or data do not match")
    args = p.parse_args(argv)
    failed = 0
    for f in args.files:
        try:
            r = reproduce(f, work=None if args.work is None else args.work / f.stem,
                          force=args.force)
        except ReproduceError as err:
            print(f"cannot reproduce: {err}")
            failed += 1
            continue
        print(f"{r['run']}: {'reproduced bit for bit' if r['identical'] else 'DIFFERS'}")
        for line in r["checks"] + r["differences"]:
            print(f"  {line}")
        failed += not r["identical"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
