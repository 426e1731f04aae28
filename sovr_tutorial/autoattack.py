"""AutoAttack (Croce & Hein, ICML 2020): one adapter for two packagings, resumable.

``pyautoattack`` from PyPI (keyword-only API, ``batch_size=``) and the GitHub
``autoattack`` package (fra31/auto-attack, ``bs=``). The adapter runs the ensemble one
attack (stage) at a time on the samples still robust, so every broken sample is attributed
to the attack that first broke it, and it saves its own progress after every chunk of every
stage, so a killed evaluation resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import io
import json
import logging
import time
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .attacks import seeded
from .checks import check_choice, check_eps, check_number
from .devices import model_device
from .evaluate import _check_inputs, _predict
from .files import atomic_write_text
from .models import eval_mode

log = logging.getLogger(__name__)

#: The standard ensemble, in AutoAttack's own order.
STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
#: The cheaper set used by quick tiers. Its numbers must be labelled "custom".
CUSTOM_ATTACKS = ("apgd-ce", "apgd-t")
#: Every attack name both AutoAttack packagings understand.
KNOWN_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
VERSIONS = ("standard", "custom")
_STATE_FORMAT = 1


@contextlib.contextmanager
def _frozen(model):
    """Parameters need no gradient while attacking; FAB calls ``backward()``, which would
    otherwise leave stray ``.grad`` values on the caller's model (and cost time)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def load_autoattack():
    """Return ``(AutoAttack class, backend)`` with backend "pyautoattack" or "autoattack".

    Prefers the PyPI package ``pyautoattack``; falls back to the GitHub package
    ``autoattack`` (fra31/auto-attack). Raises ImportError saying how to install it.
    """
    for backend in ("pyautoattack", "autoattack"):
        try:
            module = importlib.import_module(backend)
        except ImportError:
            continue
        cls = getattr(module, "AutoAttack", None)
        if cls is not None:
            return cls, backend
    raise ImportError("AutoAttack is not installed: run `pip install pyautoattack` "
                      "(or install fra31/auto-attack from GitHub, import name `autoattack`)")


def _label(version, attacks):
    if version == "standard":
        return "AutoAttack standard (APGD-CE + APGD-T + FAB-T + Square)"
    return "custom (" + " + ".join(a.upper() for a in attacks) + ")"


def _check_attacks(version, attacks):
    if attacks is None:
        return list(STANDARD_ATTACKS if version == "standard" else CUSTOM_ATTACKS)
    if version == "standard":
        raise ValueError("attacks can only be chosen with version='custom'; "
                         f"version='standard' always runs {list(STANDARD_ATTACKS)}")
    if isinstance(attacks, str) or not hasattr(attacks, "__iter__"):
        raise TypeError(f"attacks must be a list of attack names, got {attacks!r}")
    attacks = list(attacks)
    if not attacks:
        raise ValueError(f"attacks must name at least one of {list(KNOWN_ATTACKS)}, got []")
    for a in attacks:
        check_choice("attacks", a, set(KNOWN_ATTACKS))
    if len(set(attacks)) != len(attacks):
        raise ValueError(f"attacks must not repeat a name, got {attacks}")
    return attacks


def _state_file(state_path) -> Path:
    """An existing folder gets ``autoattack_state.json`` inside, a ``.json`` path is used
    as it is, anything else is a file prefix: ``runs/at`` -> ``runs/at.autoattack.json``."""
    path = Path(state_path)
    if path.is_dir():
        return path / "autoattack_state.json"
    if path.suffix == ".json":
        return path
    return path.with_name(path.name + ".autoattack.json")


def _fingerprint(model, x, y, settings) -> str:
    """Hash of weights, images, labels and settings: a state only resumes *this* evaluation."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name, t in model.state_dict().items():
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    for t in (x, y):
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _load_state(path: Path, fingerprint: str):
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"state_path: cannot read the AutoAttack state {path} ({err}); "
                         "delete it to start the evaluation afresh") from err
    if state.get("format") != _STATE_FORMAT or state.get("fingerprint") != fingerprint:
        raise ValueError(f"state_path: {path} belongs to a different AutoAttack evaluation "
                         "(other model weights, images, labels, eps, attacks, seed or "
                         "batch_size); pass another state_path or delete the file")
    return state


class _CollectLogs(logging.Handler):
    """Keeps AutoAttack's warnings (randomised/dynamic defence, zero gradients) for the
    result instead of printing them once per stage and batch into the notebook."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        msg = record.getMessage()
        if msg not in self.messages:
            self.messages.append(msg)


@contextlib.contextmanager
def _quiet_autoattack():
    logger = logging.getLogger("auto-attack")
    handler, propagate = _CollectLogs(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _make_autoattack(cls, backend, model, eps, seed, device):
    # Built as version="standard" on purpose: that sets the standard per-attack settings
    # (1 restart for APGD-CE, 9 target classes for APGD-T and FAB-T, 5000 Square queries).
    # version="custom" would keep the constructors' defaults instead (5 restarts...), so a
    # "custom" subset would not be the same attacks as in the standard ensemble.
    if backend == "pyautoattack":
        return cls(model, device=device, eps=eps, norm="Linf", seed=seed, version="standard")
    return cls(model, norm="Linf", eps=eps, version="standard", device=device, seed=seed,
               verbose=False)


def _run_backend(aa, backend, attack, x, y, batch_size, printed):
    """One attack on one chunk of at most ``batch_size`` samples -> x_adv (CPU)."""
    aa.attacks_to_run = [attack]
    if backend == "pyautoattack":
        out = aa.run_standard_evaluation(x, y, batch_size=batch_size)
    else:
        # the GitHub package prints its checks; keep them for the result instead
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            out = aa.run_standard_evaluation(x, y, bs=batch_size)
        for line in buf.getvalue().splitlines():
            if line.strip() and line.strip() not in printed:
                printed.append(line.strip())
    x_adv = out[0] if isinstance(out, (tuple, list)) else out
    return x_adv.detach()



@dataclasses.dataclass
class _Evaluation:
    """What every stage of one evaluation works with: model, data, settings and state."""
    model: torch.nn.Module
    x: torch.Tensor            # (N, C, H, W) on the CPU
    y: torch.Tensor            # (N,) on the CPU
    eps: float
    seed: int
    batch_size: int
    device: torch.device
    backend: tuple             # (AutoAttack class, backend name)
    state: dict                # what the state file holds (see _initial_state)
    state_file: Path | None
    messages: list             # AutoAttack's warnings and printed checks, kept for the result
    attacker: object = None    # the AutoAttack object, built on first use

    def save(self) -> None:
        if self.state_file is not None:
            atomic_write_text(self.state_file, json.dumps(self.state))


def _initial_state(model, x, y, batch_size, device, fingerprint, settings) -> dict:
    """Clean correctness of every sample; nothing attacked yet."""
    clean = _predict(model, x, y, batch_size, device).tolist()
    return {"format": _STATE_FORMAT, "fingerprint": fingerprint, "settings": settings,
            "clean": clean, "broken_by": [None if c else "clean" for c in clean],
            "done": [], "per_attack": {}, "current": None, "stage_seconds": {}}


def _run_chunk(ev: _Evaluation, attack: str, idx: list) -> None:
    """``attack`` on the samples ``idx`` (at most one batch); marks those it broke."""
    if ev.attacker is None:
        cls, backend = ev.backend
        ev.attacker = _make_autoattack(cls, backend, ev.model, ev.eps, ev.seed, ev.device)
    rows = torch.tensor(idx)
    with seeded(ev.seed, ev.device):
        x_adv = _run_backend(ev.attacker, ev.backend[1], attack, ev.x[rows], ev.y[rows],
                             ev.batch_size, ev.messages)
    # judged with our own forward pass: the same rule for both backends
    survived = _predict(ev.model, x_adv.cpu(), ev.y[rows], ev.batch_size, ev.device)
    for i, ok in zip(idx, survived.tolist()):
        if not ok:
            ev.state["broken_by"][i] = attack


def _run_stage(ev: _Evaluation, attack: str, bar) -> float:
    """One attack of the ensemble, chunk by chunk, on the samples robust when the stage
    began (resuming after its last finished chunk); returns the robust accuracy after it."""
    state, broken_by = ev.state, ev.state["broken_by"]
    # robust when this stage began: clean-correct and not broken by an earlier stage
    # (chunks of this stage already done may have broken some)
    todo = [i for i, b in enumerate(broken_by) if b is None or b == attack]
    current = state["current"]
    first = current["chunks_done"] if current and current["attack"] == attack else 0
    n_chunks = -(-len(todo) // ev.batch_size)
    state["stage_seconds"].setdefault(attack, 0.0)
    for c in range(first, n_chunks):
        t0 = time.time()
        bar.set_postfix(attack=attack, chunk=f"{c + 1}/{n_chunks}")
        _run_chunk(ev, attack, todo[c * ev.batch_size:(c + 1) * ev.batch_size])
        state["current"] = {"attack": attack, "chunks_done": c + 1}
        state["stage_seconds"][attack] += time.time() - t0
        ev.save()
    robust = sum(b is None for b in broken_by) / len(broken_by)
    state["per_attack"][attack] = robust
    state["done"].append(attack)
    state["current"] = None
    ev.save()
    return robust


def autoattack_eval(model, x, y, *, eps: float = 8 / 255, version: str = "standard",
                    attacks=None, batch_size: int = 250, state_path=None, seed: int = 0,
                    device=None, progress: bool = True) -> dict:
    """Robust accuracy under AutoAttack (L-inf), with per-attack attribution and resume.

    x: (N, C, H, W) images in [0, 1]; y: (N,) labels. ``version="standard"`` runs
    APGD-CE, APGD-T, FAB-T and Square with AutoAttack's standard settings;
    ``version="custom"`` runs ``attacks`` (default APGD-CE + APGD-T, with the same
    standard per-attack settings) and its numbers must be shown with ``result["label"]``.

    The ensemble is run one attack (stage) at a time, each on the samples still robust,
    exactly as AutoAttack itself does; running stages separately is what lets us say
    which attack broke which sample, and checkpoint between stages.

    Resume: with ``state_path`` (an existing folder, a ``.json`` file, or a file prefix
    such as ``"runs/at"`` -> ``runs/at.autoattack.json``) progress is saved atomically after
    every chunk of ``batch_size`` samples of every stage. Restarting a killed evaluation
    with the same arguments skips the finished stages and chunks and returns the same
    numbers. The state is our own JSON, so resume works with both backends; pyautoattack's
    own ``state_path`` is not used because its restore is broken in pyautoattack 0.2.0 (it
    saves the attack set as a string and refuses every saved state). Results do not depend
    on ``state_path``; they do depend on ``batch_size`` and ``seed`` (attack chunks).

    Returns a dict: backend, version, label, attacks (in the order run), n, eps, seed,
    clean, robust, per_attack {attack: robust accuracy after it, cumulative}, broken_by
    (per sample: None if still robust, "clean" if misclassified clean, else the first
    attack that broke it), stage_seconds {attack: seconds spent, over all resumed runs},
    seconds (this call), resumed (bool: finished work was loaded), skipped_stages,
    warnings (AutoAttack's check messages), state_file (str or None).
    The model is in eval mode (and its parameters frozen) during the attack and restored
    afterwards; the caller's global RNG is left untouched.
    """
    start = time.time()
    batch_size = _check_inputs(model, x, y, batch_size)
    eps = float(check_eps(eps))
    check_choice("version", version, set(VERSIONS))
    attacks = _check_attacks(version, attacks)
    seed = check_number("seed", seed, low=0, integer=True)
    device = model_device(model, device)
    backend = load_autoattack()
    x, y = x.detach().cpu(), y.detach().cpu().long()
    settings = {"eps": eps, "version": version, "attacks": attacks, "seed": seed,
                "batch_size": batch_size, "n": x.shape[0]}
    state_file = None if state_path is None else _state_file(state_path)

    with eval_mode(model), _frozen(model), _quiet_autoattack() as messages:
        fingerprint = None if state_file is None else _fingerprint(model, x, y, settings)
        state = None if state_file is None else _load_state(state_file, fingerprint)
        fresh = state is None
        if fresh:
            state = _initial_state(model, x, y, batch_size, device, fingerprint, settings)
        ev = _Evaluation(model, x, y, eps, seed, batch_size, device, backend, state,
                         state_file, messages)
        if fresh:
            ev.save()
        resumed = bool(state["done"] or state["current"])
        skipped = [a for a in attacks if a in state["done"]]
        with tqdm(total=len(attacks), initial=len(skipped), desc="AutoAttack",
                  disable=not progress) as bar:
            for attack in attacks:
                if attack in skipped:
                    continue
                robust = _run_stage(ev, attack, bar)
                log.info("AutoAttack %s: robust accuracy %.2f%% after %s",
                         _label(version, attacks), 100 * robust, attack)
                bar.update(1)
                bar.set_postfix(robust=f"{robust:.1%}")

    for msg in messages:
        warnings.warn(f"AutoAttack: {msg}", RuntimeWarning, stacklevel=2)
    broken_by = state["broken_by"]
    return {
        "backend": backend[1], "version": version, "label": _label(version, attacks),
        "attacks": list(attacks), "n": len(broken_by), "eps": eps, "seed": seed,
        "clean": sum(state["clean"]) / len(broken_by),
        "robust": sum(b is None for b in broken_by) / len(broken_by),
        "per_attack": {a: state["per_attack"][a] for a in attacks},
        "broken_by": list(broken_by),
        "stage_seconds": {a: state["stage_seconds"][a] for a in attacks},
        "seconds": time.time() - start,
        "resumed": resumed,
        "skipped_stages": skipped,
        "warnings": list(messages),
        "state_file": None if state_file is None else str(state_file),
    }
