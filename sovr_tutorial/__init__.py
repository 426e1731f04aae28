"""sovr_tutorial: the helper package of the SOVR adversarial-robustness course.

The notebooks explain; this package remembers. Everything a notebook calls is
importable from here::

    from sovr_tutorial import load_cifar10, build_model, pgd, sovr_loss, train
"""
from .attacks import fgsm, pgd, trades_pgd
from .checkpoint import CheckpointError, load_checkpoint, load_shipped, save_checkpoint
from .data import CLASSES, DataError, balanced_subset, batches, load_cifar10
from .evaluate import accuracy, autoattack_eval, pgd_aa_gap, pgd_accuracy
from .losses import (ce_loss, gairat_loss, gairat_weights, mart_loss,
                     ovr_loss, sovr_loss, sovr_select, trades_loss)
from .margins import (collect_margins, flip_budget, kde_bandwidth, logit_margin,
                      margin_grad_norm, margin_histogram, margin_peaks, margin_summary)
from .models import CNN, MLP, PreActResNet18, SmallCNN, build_model
from .runs import DEFAULT_SOVR_RATIO, METHODS, RULES, Run, as_run
from .tiers import TIERS, Tier, get_tier
from .train import finetune, fit, pick_device, set_seed, train, trained_model

__version__ = "0.1.0"
