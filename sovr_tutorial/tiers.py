"""The run sizes of the course, chosen in one place.

``ci``  : the whole course in minutes on 2 CPU cores (numbers are smoke, not science).
``cpu`` : a laptop, well under an hour per notebook; the shipped checkpoints.
``gpu`` : the paper's scale (PreAct ResNet-18, full CIFAR-10, eps 8/255, PGD-10).
``small``: the CIFAR-10 budget search's pick (results/README.md): a 6-conv CNN on 1,000
          images at eps 2/255 for 60 epochs (a run took 28-44 min wall in the search, in bf16
          on one thread of a 2-core AVX-512 CPU beside another run; "auto" precision keeps
          bf16 only where the CPU runs it natively). AT's margins spread
          wide there and GAIRAT's collapse, with GAIRAT's AutoAttack gap; AT's margins have
          one peak, not two.
``toy`` : the 2-D toy world (sovr_tutorial.toy).

Pick one with ``get_tier("cpu")`` or the environment variable ``SOVR_TUTORIAL_TIER``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from .checks import check_choice
from .devices import PRECISIONS

TIER_ENV = "SOVR_TUTORIAL_TIER"


def pgd_step_size(eps: float, steps: int) -> float:
    """The package's step-size rule for PGD-``steps`` at budget ``eps``.

    ``eps / 4`` from 10 steps on (2/255 at eps 8/255, the literature's PGD-10 and PGD-20
    setting); for fewer steps ``2.5 * eps / steps`` (Madry et al.), so the iterates can
    still cross the ball; never more than ``eps`` (one step = FGSM's). A tier states the
    steps of its own two attacks (``alpha``, :attr:`Tier.eval_step_size`); every other
    attack takes this rule, whatever its step count.
    """
    return min(eps, max(eps / 4, 2.5 * eps / steps))


@dataclass(frozen=True)
class Tier:
    name: str
    model: str                 # a name in models.MODELS: "small_cnn", "cnn", "preact_resnet18", "mlp"
    width: int                 # base width of the CNNs / hidden width of the MLP (not the ResNet)
    n_train: int               # balanced training subset size (50000 = all)
    n_test: int                # balanced test subset used for PGD / margins
    n_heldout: int             # held-out training-distribution slice for per-epoch checks
    n_autoattack: int          # test images given to AutoAttack
    autoattack_version: str    # "standard" or "custom" (APGD-CE + APGD-T; label it!)
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eps: float = 8 / 255
    alpha: float = 2 / 255     # step of the training attack (PGD-train_steps)
    eval_alpha: float | None = None   # step of PGD-eval_steps; None: the same as alpha
    train_steps: int = 10      # PGD steps used to make training examples
    eval_steps: int = 20       # PGD-20 for evaluation
    gairat_burn_in: int = 0    # epochs of plain AT before GAIRAT re-weights
    precision: str = "auto"    # "auto" (devices.resolve_precision), "fp32" or "bf16" autocast
    num_classes: int = 10
    depth: int = 3             # conv blocks of the "cnn" model / hidden layers of the "mlp"
    threads: int = 0           # CPU threads for training and attacks (0: torch's default)
    fold_bn: bool = False      # training attack on the model with BatchNorms folded into the
                               # convs (models.fold_bn): same math, other float rounding

    def replace(self, **changes) -> "Tier":
        return dataclasses.replace(self, **changes)

    @property
    def eval_step_size(self) -> float:
        """The step of the tier's evaluation attack, PGD-``eval_steps``: ``eval_alpha``, or
        ``alpha`` where the tier sets none. An attack of any other kind takes
        :func:`pgd_step_size`, even when its step count happens to equal the tier's."""
        return self.alpha if self.eval_alpha is None else self.eval_alpha


TIERS = {
    "ci": Tier(name="ci", model="small_cnn", width=8, n_train=1000, n_test=200, n_heldout=200,
               n_autoattack=16, autoattack_version="custom", epochs=2, batch_size=100,
               lr=0.05, train_steps=3, eval_steps=5,
               # fp32 everywhere: the test suite's numbers must not depend on whether the
               # CI machine's CPU runs bf16 natively ("auto" would choose per machine)
               precision="fp32"),
    "cpu": Tier(name="cpu", model="small_cnn", width=16, n_train=10000, n_test=1000,
                n_heldout=500, n_autoattack=200, autoattack_version="custom", epochs=10,
                batch_size=128, lr=0.05, gairat_burn_in=3),
    "gpu": Tier(name="gpu", model="preact_resnet18", width=64, n_train=50000, n_test=10000,
                n_heldout=1000, n_autoattack=1000, autoattack_version="standard", epochs=110,
                batch_size=128, lr=0.1, gairat_burn_in=50),
    # The search's pick: exactly the configuration results/cpu-cnn-w32-n1000-nheldout_200-
    # e60-eps2-alpha0.5-burn27-bf16 holds (GAIRAT re-weights after 45% of training, as in gpu).
    "small": Tier(name="small", model="cnn", width=32, depth=3, n_train=1000, n_test=1000,
                  n_heldout=200, n_autoattack=200, autoattack_version="custom", epochs=60,
                  batch_size=128, lr=0.05, eps=2 / 255, alpha=0.5 / 255, gairat_burn_in=27),
    # The 2-D toy world (sovr_tutorial.toy): an MLP 2-128-128-6 on 2,048 points in [0, 1]^2;
    # eps 0.0375 is 0.3 in the world's data units; 180 epochs of 8 batches = 1,440 steps.
    "toy": Tier(name="toy", model="mlp", width=128, depth=2, num_classes=6, n_train=2048,
                n_test=2048, n_heldout=0, n_autoattack=512, autoattack_version="custom",
                epochs=180, batch_size=256, lr=0.1, eps=0.0375, alpha=0.0375 / 4,
                gairat_burn_in=45, precision="fp32", threads=1),
}




def _parse_value(field: dataclasses.Field, text: str):
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    if kind == "float | None" and text.lower() == "none":
        return None
    if kind == "bool":
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(text)
    if kind == "int":
        return int(text)
    if kind in ("float", "float | None"):
        # "8/255" reads as a fraction: eps and step sizes are usually written so
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    return text


def parse_overrides(items) -> dict:
    """``["n_train=2000", "eps=4/255", "model=cnn"]`` -> typed overrides of Tier fields."""
    fields = {f.name: f for f in dataclasses.fields(Tier) if f.name != "name"}
    out = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of "
                             f"{', '.join(sorted(fields))}")
        try:
            out[key] = _parse_value(fields[key], text.strip())
        except ValueError:
            raise ValueError(f"--set {item!r}: {text!r} is not a valid {fields[key].type}") from None
    return out


def get_tier(name: str | None = None, **overrides) -> Tier:
    """The tier ``name``, else ``$SOVR_TUTORIAL_TIER``, else ``cpu``; fields may be overridden."""
    if name is None:
        name = os.environ.get(TIER_ENV, "cpu") or "cpu"
    check_choice("tier", name, TIERS.keys())
    tier = TIERS[name]
    tier = tier.replace(**overrides) if overrides else tier
    check_choice("precision", tier.precision, PRECISIONS)
    return tier


def as_tier(tier) -> Tier:
    """A :class:`Tier` from a Tier, a tier name, or None (``$SOVR_TUTORIAL_TIER``, else cpu)."""
    return tier if isinstance(tier, Tier) else get_tier(tier)
