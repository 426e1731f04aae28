"""Evaluation: clean accuracy, PGD accuracy with restarts, and AutoAttack.

AutoAttack (Croce & Hein, ICML 2020) is run through one adapter for two packagings:
``pyautoattack`` from PyPI (keyword-only API, ``batch_size=``) and the GitHub
``autoattack`` package (fra31/auto-attack, ``bs=``). The adapter runs the ensemble one
attack at a time on the samples still robust, so every broken sample is attributed to the
attack that first broke it, and it checkpoints its own progress for resuming.
"""
from __future__ import annotations

import contextlib
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

from .attacks import eval_mode, pgd, seeded
from .files import atomic_write_text
from .checks import (check_choice, check_eps, check_images, check_labels, check_logits,
                     check_number, check_step_size, check_steps)

log = logging.getLogger(__name__)

#: The standard ensemble, in AutoAttack's own order.
STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
#: The cheaper set used by quick tiers. Its numbers must be labelled "custom".
CUSTOM_ATTACKS = ("apgd-ce", "apgd-t")
#: Every attack name both AutoAttack packagings understand.
KNOWN_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
VERSIONS = ("standard", "custom")
_STATE_FORMAT = 1


# --------------------------------------------------------------------------- helpers

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


def _resolve_device(model, device) -> torch.device:
    """``device=None`` means wherever the model's parameters live (CPU if it has none)."""
    param = next(iter(model.parameters()), None)
    model_device = param.device if param is not None else torch.device("cpu")
    if device is None:
        return model_device
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError("device must be a torch device like 'cpu' or 'cuda', "
                         f"got {device!r}") from err
    mismatch = device.type != model_device.type or (
        device.index is not None and model_device.index is not None
        and device.index != model_device.index)
    if param is not None and mismatch:
        raise ValueError(f"device={str(device)!r} but the model lives on {str(model_device)!r}; "
                         f"move it first with model.to({str(device)!r})")
    return device


def _check_inputs(model, x, y, batch_size):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(x)
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one image, got an empty batch")
    check_labels(y, x.shape[0])
    return check_number("batch_size", batch_size, low=1, integer=True)


def _check_seed(seed):
    return check_number("seed", seed, low=0, integer=True)


@torch.no_grad()
def _predict(model, x, y, batch_size, device) -> torch.Tensor:
    """Per-sample correctness (N,) bool on the CPU; model must already be in eval mode."""
    correct = []
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        logits = model(xb)
        check_logits(logits, yb)   # also catches labels >= number of classes
        correct.append((logits.argmax(1) == yb).cpu())
    return torch.cat(correct)


# --------------------------------------------------------------------------- accuracy / PGD

def accuracy(model, x, y, *, batch_size: int = 256, device=None) -> float:
    """Fraction of ``x`` (N, C, H, W) in [0, 1] classified as ``y`` (N,), in [0, 1].

    Runs in eval mode without gradients and restores the model's train/eval mode.
    """
    batch_size = _check_inputs(model, x, y, batch_size)
    device = _resolve_device(model, device)
    with eval_mode(model):
        correct = _predict(model, x, y.long(), batch_size, device)
    return correct.float().mean().item()


def pgd_accuracy(model, x, y, *, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 20,
                 restarts: int = 1, loss: str = "ce", batch_size: int = 256, device=None,
                 progress: bool = False, seed: int = 0) -> float:
    """Accuracy under L-inf PGD (random start) with ``restarts`` restarts, in [0, 1].

    A sample counts as robust only if it is classified correctly clean and after every
    restart; each restart attacks only the samples still robust (same answer, less work).
    ``loss``: "ce" (cross-entropy) or "margin" (CW-style). Seeded privately by ``seed``,
    so the caller's random stream is untouched and more restarts never raise the number.
    """
    batch_size = _check_inputs(model, x, y, batch_size)
    check_eps(eps)
    check_step_size(alpha)
    steps = check_steps(steps)
    restarts = check_number("restarts", restarts, low=1, integer=True)
    check_choice("loss", loss, {"ce", "margin"})
    seed = _check_seed(seed)
    device = _resolve_device(model, device)
    y = y.long()
    with eval_mode(model):
        robust = _predict(model, x, y, batch_size, device)
        bar = tqdm(total=restarts, desc=f"PGD-{steps}", disable=not progress)
        with seeded(seed, device), _frozen(model), bar:
            for _ in range(restarts):
                idx = robust.nonzero().flatten()
                for i in range(0, idx.numel(), batch_size):
                    b = idx[i:i + batch_size]
                    xb, yb = x[b].to(device), y[b].to(device)
                    x_adv = pgd(model, xb, yb, eps=eps, alpha=alpha, steps=steps,
                                random_start=True, loss=loss)
                    # pgd restores the mode it found: eval, which is what we want here
                    with torch.no_grad():
                        robust[b] = (model(x_adv).argmax(1) == yb).cpu()
                bar.update(1)
                bar.set_postfix(robust=f"{robust.float().mean().item():.1%}")
    return robust.float().mean().item()


def pgd_aa_gap(pgd_acc: float, aa_acc: float) -> float:
    """PGD accuracy minus AutoAttack accuracy: how much robustness PGD over-reports.

    A large gap means PGD's gradients are misled (e.g. gradient masking); the headline
    diagnostic for importance-aware training methods.
    """
    pgd_acc = check_number("pgd_acc", pgd_acc, low=0.0, high=1.0)
    aa_acc = check_number("aa_acc", aa_acc, low=0.0, high=1.0)
    return pgd_acc - aa_acc


# --------------------------------------------------------------------------- AutoAttack

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


def _run_one(aa, backend, attack, x, y, batch_size, printed):
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
    seed = _check_seed(seed)
    device = _resolve_device(model, device)
    cls, backend = load_autoattack()

    x, y = x.detach().cpu(), y.detach().cpu().long()
    n = x.shape[0]
    settings = {"eps": eps, "version": version, "attacks": attacks, "seed": seed,
                "batch_size": batch_size, "n": n}
    state_file, state, fingerprint = None, None, None
    if state_path is not None:
        state_file = _state_file(state_path)
    skipped = []
    result = {"backend": backend, "version": version, "label": _label(version, attacks),
              "attacks": list(attacks), "n": n, "eps": eps, "seed": seed}

    with eval_mode(model), _frozen(model), _quiet_autoattack() as messages:
        if state_file is not None:
            fingerprint = _fingerprint(model, x, y, settings)
            state = _load_state(state_file, fingerprint)
        if state is None:
            clean = _predict(model, x, y, batch_size, device)
            state = {"format": _STATE_FORMAT, "fingerprint": fingerprint,
                     "settings": settings, "clean": clean.tolist(),
                     "broken_by": [None if c else "clean" for c in clean.tolist()],
                     "done": [], "per_attack": {}, "current": None, "stage_seconds": {}}
            if state_file is not None:
                _write_json(state_file, state)
        resumed = bool(state["done"] or state["current"])
        clean = torch.tensor(state["clean"], dtype=torch.bool)
        broken_by = state["broken_by"]

        aa = None
        bar = tqdm(total=len(attacks), desc="AutoAttack", disable=not progress)
        with bar:
            for attack in attacks:
                if attack in state["done"]:
                    skipped.append(attack)
                    bar.update(1)
                    continue
                # samples robust when this stage began: clean-correct and not broken by an
                # earlier stage (chunks of this stage already done may have broken some)
                todo = [i for i in range(n) if broken_by[i] is None or broken_by[i] == attack]
                cur = state["current"]
                first_chunk = cur["chunks_done"] if cur and cur["attack"] == attack else 0
                n_chunks = -(-len(todo) // batch_size)
                seconds = state["stage_seconds"]
                seconds.setdefault(attack, 0.0)
                for c in range(first_chunk, n_chunks):
                    t0 = time.time()
                    bar.set_postfix(attack=attack, chunk=f"{c + 1}/{n_chunks}")
                    idx = torch.tensor(todo[c * batch_size:(c + 1) * batch_size])
                    if aa is None:
                        aa = _make_autoattack(cls, backend, model, eps, seed, device)
                    with seeded(seed, device):
                        x_adv = _run_one(aa, backend, attack, x[idx], y[idx], batch_size,
                                         messages)
                    # judge with our own forward pass: the same rule for both backends
                    survived = _predict(model, x_adv.cpu(), y[idx], batch_size, device)
                    for i, ok in zip(idx.tolist(), survived.tolist()):
                        if not ok:
                            broken_by[i] = attack
                    state["current"] = {"attack": attack, "chunks_done": c + 1}
                    seconds[attack] += time.time() - t0
                    if state_file is not None:
                        _write_json(state_file, state)
                robust_now = sum(b is None for b in broken_by) / n
                state["per_attack"][attack] = robust_now
                state["done"].append(attack)
                state["current"] = None
                if state_file is not None:
                    _write_json(state_file, state)
                log.info("AutoAttack %s: robust accuracy %.2f%% after %s", result["label"],
                         100 * robust_now, attack)
                bar.update(1)
                bar.set_postfix(robust=f"{robust_now:.1%}")

    for msg in messages:
        warnings.warn(f"AutoAttack: {msg}", RuntimeWarning, stacklevel=2)
    result.update({
        "clean": clean.float().mean().item(),
        "robust": sum(b is None for b in broken_by) / n,
        "per_attack": {a: state["per_attack"][a] for a in attacks},
        "broken_by": list(broken_by),
        "stage_seconds": {a: state["stage_seconds"][a] for a in attacks},
        "seconds": time.time() - start,
        "resumed": resumed,
        "skipped_stages": skipped,
        "warnings": list(messages),
        "state_file": None if state_file is None else str(state_file),
    })
    return result


def _write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data))
