"""The subsets the course trains and evaluates on: class-balanced, disjoint, seeded.

:func:`load_data` is what the experiment runner and the notebooks call: a tier's balanced
training set, held-out slice and test subset of CIFAR-10, with where they came from.
"""
from __future__ import annotations

import torch

from .checks import check_labels, check_number
from .data import load_cifar10


def balanced_subset(x: torch.Tensor, y: torch.Tensor, n: int, seed: int = 0):
    """``n`` samples with class counts as equal as possible (differ by at most 1).

    A class with fewer samples than its share gives all it has and the others make up
    the rest. Deterministic for a given ``seed``; the kept samples stay in their
    original order. Returns ``(x[idx], y[idx])``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"x must hold at least one sample, got shape {tuple(x.shape)}")
    check_labels(y, x.shape[0])
    n = check_number("n", n, low=1, high=x.shape[0], integer=True)
    seed = check_number("seed", seed, low=0, integer=True)

    g = torch.Generator().manual_seed(seed)
    y_cpu = y.detach().cpu().long()
    classes = torch.unique(y_cpu)                         # sorted
    pools = [torch.nonzero(y_cpu == c).flatten() for c in classes]
    pools = [p[torch.randperm(len(p), generator=g)] for p in pools]
    available = torch.tensor([len(p) for p in pools])

    # Water-filling: the largest level q with sum(min(avail, q)) <= n, then hand out the
    # leftover one per class (in a seeded random order) among classes that still have some.
    take = torch.zeros_like(available)
    remaining = n
    open_ = available > take
    while remaining > 0:
        k = int(open_.sum())
        share = min(remaining // k, int((available - take)[open_].min())) if k else 0
        if share == 0:
            order = torch.randperm(len(pools), generator=g)
            for c in order.tolist():
                if remaining and take[c] < available[c]:
                    take[c] += 1
                    remaining -= 1
            break
        take[open_] += share
        remaining -= share * k
        open_ = available > take
    idx = torch.cat([p[:t] for p, t in zip(pools, take.tolist())]).sort().values
    return x[idx.to(x.device)], y[idx.to(y.device)]


def split_train_heldout(x, y, n_train: int, n_heldout: int, seed: int = 0):
    """Balanced, disjoint training and held-out subsets, each in a shuffled class order.

    Returns ``((x_train, y_train), (x_heldout, y_heldout))``; classes interleave, so any
    prefix of either subset is balanced too.
    """
    xs, ys = balanced_subset(x, y, n_train + n_heldout, seed=seed)
    g = torch.Generator().manual_seed(seed)
    # rank of each sample inside its class (in a random order), then a stable sort by rank:
    # classes interleave, so any prefix is balanced
    order = torch.randperm(len(ys), generator=g)
    ys_o = ys[order]
    rank = torch.zeros_like(ys_o)
    for c in ys_o.unique():
        idx = (ys_o == c).nonzero().flatten()
        rank[idx] = torch.arange(len(idx))
    order = order[torch.argsort(rank, stable=True)]
    xs, ys = xs[order], ys[order]
    return (xs[:n_train], ys[:n_train]), (xs[n_train:], ys[n_train:])


def load_data(tier, data_path=None, data_seed: int = 0):
    """A tier's data: ``((train, heldout, test), info)``, each part an (x uint8, y) pair.

    train and heldout: ``tier.n_train`` and ``tier.n_heldout`` disjoint balanced training
    images; test: ``tier.n_test`` balanced test images in a class-interleaved order (so the
    first ``tier.n_autoattack`` are balanced too). info: source, label and sha256 of the
    data, the sizes and ``data_seed``. ``data_path`` as for :func:`load_cifar10`.
    """
    x, y, info = load_cifar10("train", data_path)
    tr, ho = split_train_heldout(x, y, tier.n_train, tier.n_heldout, seed=data_seed)
    xt, yt, _ = load_cifar10("test", data_path)
    te = balanced_subset(xt, yt, tier.n_test, seed=data_seed)
    (te_x, te_y), _ = split_train_heldout(te[0], te[1], tier.n_test, 0, seed=data_seed)
    keep = {k: info[k] for k in ("source", "label", "sha256") if k in info}
    return (tr, ho, (te_x, te_y)), {**keep, "n_train": len(tr[1]), "n_heldout": len(ho[1]),
                                    "n_test": len(te_y), "data_seed": data_seed}
