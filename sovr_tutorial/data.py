"""CIFAR-10 as uint8 tensors, plus the few data helpers the course needs.

Where the images come from, in this order:

1. ``load_cifar10(split, path=...)``: a folder holding ``train.zip``/``test.zip`` of the
   offline CIFAR-10 JPEG copy, or a folder holding torchvision's ``cifar-10-batches-py``;
2. the environment variable ``SOVR_TUTORIAL_DATA`` (same kinds of folder);
3. the official CIFAR-10 through ``torchvision.datasets.CIFAR10`` in ``default_data_dir()``
   (fetch it once with ``python -m sovr_tutorial data --download``).

The JPEG copy is lossy (pixels differ from the official data by about the size of an
attack budget), so ``info["label"]`` says which one was loaded: put it on every figure.

Command line (the set-up step of ``make course``/``make test``)::

    python -m sovr_tutorial data --download [--root DIR]   # fetch, or verify $SOVR_TUTORIAL_DATA
    python -m sovr_tutorial data --check                   # say which source would be used
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from .checks import check_labels, check_number
from .files import atomic_write, atomic_write_text, sha256_file

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2471, 0.2435, 0.2616)

# sha256 of the two zips of the offline JPEG copy (see the data README).
JPEG_SHA256 = {
    "train.zip": "05752c180f6c4a2e70ea1d94aba9f573751e4a5bad2a7be1a1d694b74179fe27",
    "test.zip": "493d2093be1b94759b78f4c75879f79697a9a1576c842f059511d032ef04d34f",
}
DATA_ENV = "SOVR_TUTORIAL_DATA"
HOME_ENV = "SOVR_TUTORIAL_HOME"
OFFICIAL_FOLDER = "cifar-10-batches-py"   # what torchvision unpacks into its root
SPLITS = ("train", "test")
LABELS = {"jpeg": "CIFAR-10 (JPEG copy)", "official": "CIFAR-10"}

_VERIFIED_FILE = "verified.json"


class DataError(ValueError):
    """The data is missing, incomplete or not what was expected. The message says how to fix it."""


def default_data_dir() -> Path:
    """The folder for the official download and the decoded cache.

    The repository's ``data/`` folder, or ``$SOVR_TUTORIAL_HOME`` when that is set
    (the folder itself, not a parent of it).
    """
    home = os.environ.get(HOME_ENV, "").strip()
    if home:
        return Path(home).expanduser()
    return Path(__file__).resolve().parents[1] / "data"


def how_to_get_data() -> str:
    """The two ways to get CIFAR-10, as one sentence for error messages."""
    return (f"To get the data, either set {DATA_ENV} to a folder holding train.zip and "
            "test.zip of the CIFAR-10 JPEG copy, or run `python -m sovr_tutorial data "
            "--download` (fetches the official CIFAR-10 with torchvision into "
            f"{default_data_dir()}).")


# ---------------------------------------------------------------------------- hashes

def verify_sha256(path, expected: str) -> str:
    """Return the sha256 of ``path`` or raise DataError if it is not ``expected``.

    The file is only read: a bad copy is left where it is for the user to inspect.
    """
    path = Path(path)
    if not isinstance(expected, str) or len(expected) != 64:
        raise ValueError(f"expected must be a 64-character hex sha256, got {expected!r}")
    if not path.is_file():
        raise DataError(f"{path} does not exist, so its sha256 cannot be checked. "
                        + how_to_get_data())
    actual = sha256_file(path)
    if actual != expected.lower():
        raise DataError(
            f"{path} has the wrong sha256: expected {expected.lower()}, got {actual}. "
            "The file is incomplete, corrupted or a different version; it was left "
            "untouched. Replace it with a good copy of the CIFAR-10 JPEG copy (compare "
            "with `sha256sum`), or unset " + DATA_ENV + " and run `python -m "
            "sovr_tutorial data --download` to use the official CIFAR-10 instead.")
    return actual


# ---------------------------------------------------------------------------- loading

def load_cifar10(split: str = "train", path=None, *, download: bool = False, cache_dir=None):
    """Load one CIFAR-10 split as uint8 tensors.

    Returns ``(x, y, info)``: ``x`` uint8 (N, 3, 32, 32), ``y`` int64 (N,) in 0..9, and
    ``info`` a dict with ``"source"`` (``"jpeg"`` or ``"official"``), ``"path"``,
    ``"label"`` (name to print on figures), ``"split"``, ``"n"`` and ``"cached"``.

    ``path`` (or ``$SOVR_TUTORIAL_DATA``) is a folder holding ``train.zip``/``test.zip``
    of the JPEG copy or torchvision's ``cifar-10-batches-py``. Without either, the
    official CIFAR-10 in ``default_data_dir()`` is used (``download=True`` fetches it).
    JPEG zips are sha256-checked and decoded once, then read from a ``.pt`` cache in
    ``cache_dir`` (default ``default_data_dir()/"cache"``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {download!r}")
    kind, folder, origin = _resolve_source(path, split, download=download)
    if kind == "jpeg":
        return _load_jpeg(folder / f"{split}.zip", split, cache_dir)
    return _load_official(folder, split, download=download, origin=origin)


def _resolve_source(path, split, *, download=False):
    """Pick ("jpeg"|"official", folder, origin) or raise DataError saying what is missing."""
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a folder path (str or Path), got {type(path).__name__}")
        return _classify(Path(path).expanduser(), split, origin="path argument")
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return _classify(Path(env).expanduser(), split, origin=f"${DATA_ENV}")
    root = default_data_dir()
    if download or (root / OFFICIAL_FOLDER).is_dir():
        return "official", root, "default data folder"
    raise DataError(f"No CIFAR-10 found: no path was given, {DATA_ENV} is not set and "
                    f"{root / OFFICIAL_FOLDER} does not exist. " + how_to_get_data())


def _classify(folder: Path, split: str, origin: str):
    where = f"{folder} (from the {origin})"
    if not folder.exists():
        raise DataError(f"{where} does not exist. Expected a folder holding {split}.zip of "
                        f"the CIFAR-10 JPEG copy or torchvision's {OFFICIAL_FOLDER}/. "
                        + how_to_get_data())
    if not folder.is_dir():
        raise DataError(f"{where} is a file; give the folder that holds train.zip/test.zip "
                        f"or {OFFICIAL_FOLDER}/, not a file. " + how_to_get_data())
    if (folder / f"{split}.zip").is_file():
        return "jpeg", folder, origin
    if (folder / OFFICIAL_FOLDER).is_dir():
        return "official", folder, origin
    if folder.name == OFFICIAL_FOLDER:   # the user pointed inside torchvision's folder
        return "official", folder.parent, origin
    raise DataError(f"{where} holds neither {split}.zip (CIFAR-10 JPEG copy) nor "
                    f"{OFFICIAL_FOLDER}/ (official CIFAR-10). " + how_to_get_data())


def _load_official(root: Path, split: str, *, download: bool, origin: str):
    import torchvision  # heavy import, only needed on this path

    try:
        ds = torchvision.datasets.CIFAR10(root=str(root), train=(split == "train"),
                                          download=download)
    except (RuntimeError, OSError) as err:
        # torchvision says RuntimeError for missing or md5-mismatched files, OSError/URLError
        # for a failed download; both need the same advice.
        hint = "" if download else " (download=False)"
        raise DataError(f"Official CIFAR-10 {split} split not usable in {root} (from the "
                        f"{origin}){hint}: {err}. " + how_to_get_data()) from err
    data = np.asarray(ds.data)
    if data.shape[1:] != (32, 32, 3) or data.dtype != np.uint8:
        raise DataError(f"Official CIFAR-10 in {root} has unexpected images of shape "
                        f"{data.shape} and dtype {data.dtype}; expected (N, 32, 32, 3) uint8.")
    x = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor(ds.targets, dtype=torch.int64)
    _check_decoded(x, y, root)
    info = {"source": "official", "path": str(root / OFFICIAL_FOLDER), "label": LABELS["official"],
            "split": split, "n": int(x.shape[0]), "cached": False}
    return x, y, info


def _load_jpeg(zip_path: Path, split: str, cache_dir):
    expected = JPEG_SHA256[zip_path.name]
    cache_dir = default_data_dir() / "cache" if cache_dir is None else Path(cache_dir).expanduser()
    # Named by content hash, so two copies of the same zip share one cache file.
    cache_file = cache_dir / f"cifar10-jpeg-{split}-{expected[:16]}.pt"

    if not _is_verified(zip_path, expected, cache_dir):
        verify_sha256(zip_path, expected)
        _remember_verified(zip_path, expected, cache_dir)

    info = {"source": "jpeg", "path": str(zip_path), "label": LABELS["jpeg"], "split": split,
            "sha256": expected, "cache": str(cache_file)}
    cached = _read_cache(cache_file, expected)
    if cached is not None:
        x, y = cached
        return x, y, {**info, "n": int(x.shape[0]), "cached": True}

    x, y = _decode_zip(zip_path)
    _check_decoded(x, y, zip_path)
    try:
        atomic_write(cache_file, lambda f: torch.save({"x": x, "y": y, "sha256": expected}, f))
    except OSError as err:   # read-only location: still usable, only slower next time
        print(f"warning: could not write the cache {cache_file}: {err}", file=sys.stderr)
        info["cache"] = None
    return x, y, {**info, "n": int(x.shape[0]), "cached": False}


def _decode_zip(zip_path: Path):
    """Decode every CLASS/NAME.jpg member; order: class index, then file name."""
    from PIL import Image
    from tqdm.auto import tqdm

    class_index = {name: i for i, name in enumerate(CLASSES)}
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as err:
        raise DataError(f"{zip_path} is not a readable zip file: {err}") from err
    with zf:
        members = []
        for info in zf.infolist():
            if info.is_dir():
                continue
            parts = info.filename.split("/")
            if len(parts) != 2 or parts[0] not in class_index or not parts[1].lower().endswith(".jpg"):
                raise DataError(f"{zip_path} holds {info.filename!r}; expected only members "
                                f"CLASS/NNNN.jpg with CLASS one of {list(CLASSES)}.")
            members.append((class_index[parts[0]], parts[1], info))
        if not members:
            raise DataError(f"{zip_path} holds no CLASS/NNNN.jpg images.")
        members.sort(key=lambda m: (m[0], m[1]))

        images = np.empty((len(members), 32, 32, 3), dtype=np.uint8)
        labels = np.array([m[0] for m in members], dtype=np.int64)
        for i, (_, _, info) in enumerate(tqdm(members, desc=f"Decoding {zip_path.name}",
                                               unit="img", mininterval=0.5)):
            with Image.open(io.BytesIO(zf.read(info))) as im:
                if im.size != (32, 32):
                    raise DataError(f"{zip_path}:{info.filename} is {im.size[0]}x{im.size[1]}, "
                                    "expected a 32x32 image.")
                images[i] = np.asarray(im.convert("RGB"))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(labels)


def _check_decoded(x, y, where):
    ok = (x.dtype == torch.uint8 and x.dim() == 4 and tuple(x.shape[1:]) == (3, 32, 32)
          and y.dtype == torch.int64 and y.shape == (x.shape[0],)
          and (y.numel() == 0 or (int(y.min()) >= 0 and int(y.max()) < len(CLASSES))))
    if not ok:
        raise DataError(f"Data from {where} decoded to x {tuple(x.shape)} {x.dtype}, y "
                        f"{tuple(y.shape)} {y.dtype}; expected uint8 (N, 3, 32, 32) and "
                        "int64 labels 0..9.")


# ---------------------------------------------------------------------------- cache

def _read_cache(cache_file: Path, expected: str):
    """(x, y) from a cache file written for this hash, or None if absent or unusable."""
    if not cache_file.is_file():
        return None
    try:
        blob = torch.load(cache_file, map_location="cpu", weights_only=True)
        x, y = blob["x"], blob["y"]
        if blob.get("sha256") != expected:
            return None
        _check_decoded(x, y, cache_file)
    except Exception:   # a truncated or foreign cache file: decode again and replace it
        return None
    return x, y


def _stat_key(path: Path):
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _is_verified(zip_path: Path, expected: str, cache_dir: Path) -> bool:
    """True if this exact file (same size and mtime) already passed the sha256 check."""
    try:
        record = json.loads((cache_dir / _VERIFIED_FILE).read_text())
        entry = record.get(str(zip_path.resolve()))
        return entry == {**_stat_key(zip_path), "sha256": expected}
    except (OSError, ValueError, AttributeError):
        return False


def _remember_verified(zip_path: Path, expected: str, cache_dir: Path):
    record_file = cache_dir / _VERIFIED_FILE
    try:
        try:
            record = json.loads(record_file.read_text())
            if not isinstance(record, dict):
                record = {}
        except (OSError, ValueError):
            record = {}
        record[str(zip_path.resolve())] = {**_stat_key(zip_path), "sha256": expected}
        atomic_write_text(record_file, json.dumps(record, indent=1))
    except OSError:
        pass   # only costs a re-hash next time


# ---------------------------------------------------------------------------- subsets

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


# ---------------------------------------------------------------------------- augmentation

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
    n, c, h, w = x.shape
    p = padding
    padded = x.new_zeros((n, c, h + 2 * p, w + 2 * p))
    padded[:, :, p:p + h, p:p + w] = x
    # Draw on the generator's device, then move: results do not depend on x's device.
    gdev = generator.device
    dy = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=gdev).to(x.device)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=gdev).to(x.device)
    flip = (torch.rand(n, generator=generator, device=gdev) < 0.5).to(x.device)
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
        n = self.x.shape[0]
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            xb = self.x[idx]
            xb = xb.float().div_(255) if xb.dtype == torch.uint8 else xb
            if self.augment:
                xb = _augment(xb, g)
            yield xb, self.y[idx]


def batches(x_uint8, y, batch_size, *, shuffle=True, augment=False, seed=0, device="cpu",
            drop_last=False) -> Batches:
    """Shorthand for :class:`Batches` (same arguments)."""
    return Batches(x_uint8, y, batch_size, shuffle=shuffle, augment=augment, seed=seed,
                   device=device, drop_last=drop_last)


def _epoch_seed(seed: int, epoch: int) -> int:
    # Hash instead of seed + epoch, so (seed=1, epoch=0) and (seed=0, epoch=1) differ.
    digest = hashlib.sha256(f"sovr_tutorial.batches:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# ---------------------------------------------------------------------------- command line

def _describe_source() -> tuple[bool, str]:
    env = os.environ.get(DATA_ENV, "").strip()
    try:
        kind, folder, origin = _resolve_source(None, "train")
    except DataError as err:
        return False, str(err)
    if kind == "jpeg":
        return True, (f"{LABELS['jpeg']} from {folder} (via ${DATA_ENV}); zips checked against "
                      "their sha256 on first use")
    via = f" (via ${DATA_ENV}={env})" if env else ""
    return True, f"{LABELS['official']} (torchvision) from {folder / OFFICIAL_FOLDER}{via}"


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m sovr_tutorial data",
        description="Set up CIFAR-10 for the course: download the official data, or "
                    f"verify the JPEG copy named by ${DATA_ENV} and warm its cache.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--download", action="store_true",
                        help=f"fetch the official CIFAR-10 once (or, when ${DATA_ENV} is set "
                             "and --root is not, verify that copy and decode it into the cache)")
    action.add_argument("--check", action="store_true",
                        help="print which data source load_cifar10() would use")
    parser.add_argument("--root", type=Path, default=None,
                        help=f"where to download the official CIFAR-10 (default: {default_data_dir()})")
    args = parser.parse_args(argv)

    try:
        if args.check:
            ok, text = _describe_source()
            print(text if ok else f"no data: {text}")
            return 0 if ok else 1
        env = os.environ.get(DATA_ENV, "").strip()
        if env and args.root is None:
            for split in SPLITS:
                try:
                    x, y, info = load_cifar10(split)
                except DataError as err:
                    raise DataError(f"{err} ({DATA_ENV} is set, so --download only checks that "
                                    f"copy: unset {DATA_ENV} to download the official CIFAR-10, "
                                    f"or add --root {env} to download it there.)") from err
                state = "cache" if info.get("cached") else "decoded"
                print(f"{info['label']} {split}: {tuple(x.shape)} from {info['path']} ({state})")
            return 0
        root = default_data_dir() if args.root is None else args.root.expanduser()
        for split in SPLITS:
            # torchvision downloads once, checks the archive's md5 and skips what is there.
            x, y, info = _load_official(root, split, download=True,
                                        origin="--root" if args.root else "default data folder")
            print(f"{info['label']} {split}: {tuple(x.shape)} in {info['path']}")
        if args.root is not None and root.resolve() != default_data_dir().resolve():
            print(f"To use it, pass path={str(root)!r} to load_cifar10 or set {DATA_ENV}={root}")
        return 0
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
