"""sovr_tutorial: the helper package of the SOVR adversarial-robustness course.

The notebooks explain; this package remembers. Its flat core is what a student reads: attacks,
losses, margins, models, train, evaluate, autoattack, data, sampling, batches, tiers, runs,
checkpoint, devices, checks, files and paths, one job each. Everything a notebook calls from
the core is importable from here::

    from sovr_tutorial import load_cifar10, build_model, pgd, sovr_loss, train

Beside the core, never imported by it, three subpackages:

- ``sovr_tutorial.figures``: the figures and widgets (``plots``, ``images``, ``explorer``,
  ``movie``, ``frames``, ``toy``, ``push``, ``widgets``, ``eps_widgets``, ``toy_widgets``);
- ``sovr_tutorial.toy``: the 2-D toy world (``world``: the points; ``model``: training,
  measuring and moving a toy model);
- ``sovr_tutorial.lab``: what reproduces and judges results (the runners ``experiments``,
  ``toy`` and ``movie``, ``results``, ``verdicts``, ``stats``, ``report``, ``search``,
  ``scales``, ``provenance``).

The core imports only itself; the figures and the toy world import the core (and the
figures the toy world); only the lab and the notebooks import the lab
(``tests/test_layout.py`` holds the package to it).
"""
from .attacks import attack_dataset, fgsm, pgd, trades_pgd
from .autoattack import autoattack_eval
from .batches import batches
from .checkpoint import CheckpointError, load_checkpoint, load_shipped, save_checkpoint
from .data import CLASSES, DataError, load_cifar10
from .devices import pick_device
from .evaluate import accuracy, adversarial_margins, pgd_aa_gap, pgd_accuracy, predictions
from .losses import (ce_loss, gairat_loss, gairat_weights, mart_loss,
                     ovr_loss, sovr_loss, sovr_select, trades_loss)
from .margins import (collect_margins, flip_budget, kde_bandwidth, logit_margin,
                      margin_grad_norm, margin_histogram, margin_peaks, margin_summary)
from .models import CNN, MLP, PreActResNet18, SmallCNN, build_model
from .runs import DEFAULT_SOVR_RATIO, METHODS, RULES, Run, as_run
from .sampling import balanced_subset, load_data, split_train_heldout
from .tiers import TIERS, Tier, get_tier
from .train import finetune, fit, set_seed, train, trained_model

__version__ = "0.1.0"
