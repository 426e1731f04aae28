"""Mini-batches for training: the data set moved to the device once, shuffled per epoch
under a seed, with random crop + flip augmentation for images done on tensors."""
from __future__ import annotations

import hashlib
import math

import torch

from .checks import check_labels, check_number

PADDING = 4   # pixels of zeros each side for the training crops


def augment(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop (``padding`` pixels of zeros each side) and random horizontal flip.

    x: (N, C, H, W), float in [0, 1] or uint8; returns the same shape, dtype and device.
    One gather over a padded copy, no per-image loop; the random offsets and flips come
    from ``generator`` only, so the same generator state gives the same result.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype == torch.uint8):
        raise TypeError(f"x must be float images in [0, 1] or uint8, got dtype {x.dtype}")
    if not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator (e.g. "
                        f"torch.Generator().manual_seed(0)), got {type(generator).__name__}")
    padding = check_number("padding", padding, low=0, high=64, integer=True)
    return _augment(x, generator, padding)


def _augment(x, generator, padding=4):
    dy, dx, flip = _draw(x.shape[0], generator, padding)
    return _crop_flip(x, dy.to(x.device), dx.to(x.device), flip.to(x.device), padding)


def _draw(n, generator, padding):
    """The random numbers of one batch of ``n`` images: row offsets, column offsets (each in
    0..2 * padding) and flips, drawn in this order on the generator's device, so results do
    not depend on the images' device. Each number takes one draw from the generator: drawing
    the batches of an epoch one after another gives the numbers a per-step draw gives."""
    gdev = generator.device
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev)
    flip = torch.rand(n, generator=generator, device=gdev) < 0.5
    return dy, dx, flip


def _crop_flip(x, dy, dx, flip, padding):
    """x (N, C, H, W) cropped at offsets dy, dx (N,) of its zero-padded copy, mirrored where
    flip (N,); dy, dx and flip on x's device."""
    n, c, h, w = x.shape
    p = padding
    padded = x.new_zeros((n, c, h + 2 * p, w + 2 * p))
    padded[:, :, p:p + h, p:p + w] = x
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = dy[:, None] + ar_h                                             # (N, H)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - ar_w, ar_w)   # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


# ---------------------------------------------------------------------------- batches

class Batches:
    """Mini-batches of a uint8 image set, as float [0, 1] images on ``device``.

    The whole set moves to ``device`` once. Each pass (``for xb, yb in loader``) is one
    epoch: epoch ``e`` uses a torch.Generator seeded from ``(seed, e)``, so two loaders
    with the same seed give the same batches, epoch after epoch, and ``set_epoch(e)``
    resumes the sequence after a restart. ``len(loader)`` is the number of batches.
    """

    def __init__(self, x_uint8, y, batch_size, *, shuffle=True, augment=False, seed=0,
                 device="cpu", drop_last=False):
        if not isinstance(x_uint8, torch.Tensor):
            raise TypeError(f"x_uint8 must be a torch.Tensor, got {type(x_uint8).__name__}")
        images = x_uint8.dtype == torch.uint8 and x_uint8.dim() == 4
        points = x_uint8.is_floating_point() and x_uint8.dim() == 2
        if not (images or points):
            raise ValueError("x_uint8 must be uint8 images of shape (N, C, H, W) as returned "
                             "by load_cifar10 (or float points (N, D) of the toy world), got "
                             f"{x_uint8.dtype} {tuple(x_uint8.shape)}")
        if augment and points:
            raise ValueError("augment=True crops and flips images; points are not augmented")
        if x_uint8.shape[0] < 1:
            raise ValueError("x_uint8 must hold at least one image, got 0")
        check_labels(y, x_uint8.shape[0])
        self.batch_size = check_number("batch_size", batch_size, low=1, integer=True)
        for name, flag in (("shuffle", shuffle), ("augment", augment), ("drop_last", drop_last)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        self.seed = check_number("seed", seed, low=0, integer=True)
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device must be a torch device like 'cpu' or 'cuda', got {device!r}") from err
        self.shuffle, self.augment, self.drop_last = shuffle, augment, drop_last
        self.x = x_uint8.to(self.device)
        self.y = y.to(self.device)
        self.epoch = 0

    def __len__(self):
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int):
        """Make the next pass epoch ``epoch`` (for resuming a run)."""
        self.epoch = check_number("epoch", epoch, low=0, integer=True)

    def __iter__(self):
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        self.epoch += 1
        order, dy, dx, flip = self._plan(g)
        for b in range(len(self)):
            lo, hi = b * self.batch_size, (b + 1) * self.batch_size
            idx = order[lo:hi]
            xb = self.x[idx]
            xb = xb.float().div_(255) if xb.dtype == torch.uint8 else xb
            if self.augment:
                xb = _crop_flip(xb, dy[lo:hi], dx[lo:hi], flip[lo:hi], PADDING)
            yield xb, self.y[idx]

    def _plan(self, g):
        """The epoch's order, crop offsets and flips, drawn up front on the CPU in the order
        a per-step draw takes them (the order, then each batch's offsets and flips in turn)
        and moved to the device in one transfer: no host-to-device copy inside the epoch."""
        n = self.x.shape[0]
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        if not self.augment:
            return order.to(self.device), None, None, None
        sizes = [min(self.batch_size, n - b * self.batch_size) for b in range(len(self))]
        draws = [_draw(size, g, PADDING) for size in sizes]
        dy, dx, flip = (torch.cat([d[i] for d in draws]) for i in range(3))
        m = dy.numel()
        plan = torch.cat([order, dy, dx, flip.long()]).to(self.device)   # the one transfer
        return plan[:n], plan[n:n + m], plan[n + m:n + 2 * m], plan[n + 2 * m:] != 0


def batches(x_uint8, y, batch_size, *, shuffle=True, augment=False, seed=0, device="cpu",
            drop_last=False) -> Batches:
    """Shorthand for :class:`Batches` (same arguments)."""
    return Batches(x_uint8, y, batch_size, shuffle=shuffle, augment=augment, seed=seed,
                   device=device, drop_last=drop_last)


def _epoch_seed(seed: int, epoch: int) -> int:
    # Hash instead of seed + epoch, so (seed=1, epoch=0) and (seed=0, epoch=1) differ.
    digest = hashlib.sha256(f"sovr_tutorial.batches:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
