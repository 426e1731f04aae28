"""What produced a notebook's outputs: the session, the shipped checkpoints' data, the runs.

A notebook opens with its question; the plumbing of where its numbers came from lives here
and is printed in a short footer:

* :class:`Session` remembers the tier, data, seed and start time of a notebook run and
  renders the footer (tier, data, models, hardware, software, run time);
* :func:`data_notice` is the one line a session prints when its data source differs from
  the one the shipped checkpoints were trained on (they were trained on the JPEG copy of
  CIFAR-10; ``make course`` fetches the official CIFAR-10);
* :func:`runs_table` is the table of the runs behind a results folder (tier, seed, data,
  hardware, software, training time).
"""
from __future__ import annotations

import json
import time

from ..checkpoint import CheckpointError, load_checkpoint, shipped_path, shipped_sha256
from ..devices import pick_device, resolve_precision
from ..paths import results_dir
from ..runs import as_run



def hardware(env: dict) -> str:
    """A result file's ``environment`` in words: its GPU, else "2-core x86_64 CPU, no GPU"."""
    return env.get("gpu") or f"{env.get('cpu_count', '?')}-core {env.get('cpu', '?')} CPU, no GPU"


def shipped_data_label(run, *, tier: str = "cpu", seed: int = 0):
    """The data label ("CIFAR-10 (JPEG copy)") a shipped checkpoint was trained on, or None.

    A checkpoint that records its data (``config["data"]``) says so itself; the ones shipped
    so far do not, and the results file that lists the checkpoint's sha256
    (``results/<tier>/<run>.json``, written by the same ``--ship`` run) does.
    """
    name = as_run(run).name(seed)
    path = shipped_path(name, tier)
    try:
        digest = shipped_sha256(path)
    except CheckpointError:
        return None
    recorded = load_checkpoint(path, sha256=digest)["config"].get("data")
    if isinstance(recorded, dict) and recorded.get("label"):
        return recorded["label"]
    results = results_dir() / tier / f"{name}.json"
    if results.is_file():
        r = json.loads(results.read_text())
        if r.get("checkpoint", {}).get("sha256") == digest:
            return r.get("data", {}).get("label")
    return None


def data_notice(runs, data_info: dict, *, tier: str = "cpu", seed: int = 0) -> str:
    """One line when this session's data differs from the shipped checkpoints', else "".

    runs: the runs (or slugs) whose shipped checkpoints the notebook loads; data_info: the
    ``info`` of ``load_cifar10`` / ``load_data`` (its "label").
    """
    labels = {shipped_data_label(r, tier=tier, seed=seed) for r in runs} - {None}
    session = data_info.get("label", "?")
    other = sorted(label for label in labels if label != session)
    if not other:
        return ""
    return (f"Note: the shipped checkpoints were trained on {' and '.join(other)}, and this "
            f"session evaluates them on {session}. The two differ by about an attack budget "
            "per pixel, so the numbers here differ a little from the committed outputs and "
            "from results/; RETRAIN = True trains on this session's data.")


class Session:
    """The run of one notebook: what it used, and since when.

    tier: the Tier in use; data_info: ``load_data``'s info (or None when the notebook reads
    no images and trains nothing: then the footer names the tier only); models: how the
    models were obtained, in words. ``footer()`` is the markdown of the provenance footer.
    """

    def __init__(self, tier, data_info=None, *, seed=None, models: str = ""):
        self.tier, self.data_info, self.seed, self.models = tier, data_info, seed, models
        self.started = time.perf_counter()

    @property
    def setting(self) -> str:
        """``cpu tier, CIFAR-10 (JPEG copy), seed 0``: the caption of every figure."""
        parts = [f"{self.tier.name} tier"]
        if self.data_info:
            parts.append(self.data_info.get("label", "?"))
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return ", ".join(parts)

    def footer(self) -> str:
        from .experiments import environment   # experiments imports the training stack
        env = environment()
        t = self.tier
        minutes, seconds = divmod(time.perf_counter() - self.started, 60)
        lines = [f"**Provenance of the outputs above.** {self.setting}"
                 + (f"; model {t.model} (width {t.width}), {t.n_train:,} training images, "
                    f"{t.epochs} epochs, PGD-{t.train_steps} training attack at eps "
                    f"{t.eps * 255:.0f}/255, training in "
                    f"{resolve_precision(t.precision, pick_device())} ({t.precision} precision)."
                    if self.data_info else ".")]
        if self.models:
            lines.append(f"Models: {self.models}.")
        if self.data_info and self.data_info.get("path"):
            lines.append(f"Data read from `{self.data_info.get('shown', self.data_info['path'])}`.")
        lines.append(f"Hardware: {hardware(env)}, torch threads: {env.get('torch_threads', '?')}; "
                     f"torch {env['torch']}, python {env['python']}"
                     + (f", commit {env['git_commit'][:12]}" if env.get("git_commit") else "")
                     + ".")
        lines.append(f"This run took {int(minutes)} min {seconds:.0f} s from the setup cell "
                     "to this footer.")
        return " ".join(lines)


def runs_table(results: list) -> str:
    """Markdown table of the runs behind a results folder (one row per result file).

    results: result dicts as loaded with ``load_results(..., collapsed=True)``; a collapsed
    run is marked, not hidden.
    """
    from .results import is_collapsed
    rows = ["| run | tier | seed | data | hardware | torch | AutoAttack | finished | "
            "training time | note |", "|" + " --- |" * 10]
    for r in results:
        e, aa = r.get("environment", {}), r["autoattack"]
        note = (f"collapsed to chance (clean {100 * r['clean_acc']:.1f}%): left out"
                if is_collapsed(r) else "")
        rows.append(f"| {r['run']} | {r['tier']['name']} | {r['seed']} | "
                    f"{r.get('data', {}).get('label', '?')} | {hardware(e)} | "
                    f"{e.get('torch', '?')} | {aa.get('label', '?')}, n={aa['n']} | "
                    f"{r.get('finished', '?')} | {r.get('train_seconds', 0) / 60:.1f} min | "
                    f"{note} |")
    return "\n".join(rows)
