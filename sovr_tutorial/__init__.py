"""sovr_tutorial: the helper package of the SOVR adversarial-robustness course.

The notebooks explain; this package remembers. Everything a notebook calls is
importable from here::

    from sovr_tutorial import load_cifar10, build_model, pgd, sovr_loss, train

The figures (``plots``, ``image_plots``, ``explorer_plots``, ``toy_plots``, ``movie_plots``,
``report``), the widgets (``eps_widgets``, ``widgets``, ``toy_widgets``) and the toy world
(``toy_data``, ``toy_model``, ``toy``) are imported as modules: ``from sovr_tutorial import plots``.
"""
from .attacks import attack_dataset, fgsm, pgd, trades_pgd
from .autoattack import autoattack_eval
from .batches import batches
from .checkpoint import CheckpointError, load_checkpoint, load_shipped, save_checkpoint
from .data import CLASSES, DataError, load_cifar10
from .devices import pick_device
from .evaluate import accuracy, pgd_aa_gap, pgd_accuracy, predictions
from .losses import (ce_loss, gairat_loss, gairat_weights, mart_loss,
                     ovr_loss, sovr_loss, sovr_select, trades_loss)
from .margins import (collect_margins, flip_budget, kde_bandwidth, logit_margin,
                      margin_grad_norm, margin_histogram, margin_peaks, margin_summary)
from .models import CNN, MLP, PreActResNet18, SmallCNN, build_model
from .results import (collapsed_note, is_collapsed, load_results, results_table, run_of,
                      stored_histograms)
from .runs import DEFAULT_SOVR_RATIO, METHODS, RULES, Run, as_run
from .sampling import balanced_subset, load_data, split_train_heldout
from .tiers import TIERS, Tier, get_tier
from .train import finetune, fit, set_seed, train, trained_model

__version__ = "0.1.0"
