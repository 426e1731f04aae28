"""CIFAR-10 as uint8 tensors: where the images come from, how they are checked and cached.

Where the images come from, in this order:

1. ``load_cifar10(split, path=...)``: a folder holding ``train.zip``/``test.zip`` of the
   offline CIFAR-10 JPEG copy, or a folder holding torchvision's ``cifar-10-batches-py``;
2. the environment variable ``SOVR_TUTORIAL_DATA`` (same kinds of folder);
3. the official CIFAR-10 through ``torchvision.datasets.CIFAR10`` in ``data_dir()``
   (fetch it once with ``python -m sovr_tutorial data --download``).

The JPEG copy is lossy (pixels differ from the official data by about the size of an
attack budget), so ``info["label"]`` says which one was loaded: put it on every figure.

Command line (the set-up step of ``make course``/``make test``; see ``__main__.py``)::

    python -m sovr_tutorial data --download [--root DIR]   # fetch, or verify $SOVR_TUTORIAL_DATA
    python -m sovr_tutorial data --check                   # say which source would be used
"""
from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from .files import atomic_write, atomic_write_text, sha256_file
from .paths import HOME_ENV, base, data_dir  # noqa: F401  (HOME_ENV: named in errors)

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")

# sha256 of the two zips of the offline JPEG copy (see the data README).
JPEG_SHA256 = {
    "train.zip": "05752c180f6c4a2e70ea1d94aba9f573751e4a5bad2a7be1a1d694b74179fe27",
    "test.zip": "493d2093be1b94759b78f4c75879f79697a9a1576c842f059511d032ef04d34f",
}
DATA_ENV = "SOVR_TUTORIAL_DATA"
OFFICIAL_FOLDER = "cifar-10-batches-py"   # what torchvision unpacks into its root
SPLITS = ("train", "test")
LABELS = {"jpeg": "CIFAR-10 (JPEG copy)", "official": "CIFAR-10"}

_VERIFIED_FILE = "verified.json"


class DataError(ValueError):
    """The data is missing, incomplete or not what was expected. The message says how to fix it."""


def how_to_get_data() -> str:
    """The two ways to get CIFAR-10, as one sentence for error messages."""
    return (f"To get the data, either set {DATA_ENV} to a folder holding train.zip and "
            "test.zip of the CIFAR-10 JPEG copy, or run `python -m sovr_tutorial data "
            "--download` (fetches the official CIFAR-10 with torchvision into "
            f"{data_dir()}).")


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
    ``info`` a dict with ``"source"`` (``"jpeg"`` or ``"official"``), ``"path"``, ``"shown"``
    (the path as outputs print it: ``$SOVR_TUTORIAL_DATA/train.zip`` or ``data/...``),
    ``"label"`` (name to print on figures), ``"split"``, ``"n"`` and ``"cached"``.

    ``path`` (or ``$SOVR_TUTORIAL_DATA``) is a folder holding ``train.zip``/``test.zip``
    of the JPEG copy or torchvision's ``cifar-10-batches-py``. Without either, the
    official CIFAR-10 in ``data_dir()`` is used (``download=True`` fetches it).
    JPEG zips are sha256-checked and decoded once, then read from a ``.pt`` cache in
    ``cache_dir`` (default ``data_dir()/"cache"``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {download!r}")
    kind, folder, origin = _resolve_source(path, split, download=download)
    if kind == "jpeg":
        x, y, info = _load_jpeg(folder / f"{split}.zip", split, cache_dir)
    else:
        x, y, info = _load_official(folder, split, download=download, origin=origin)
    return x, y, {**info, "shown": _shown(Path(info["path"]), folder, origin)}


def _shown(file: Path, folder: Path, origin: str) -> str:
    """Where the data came from, as an output others will read may say it: through the
    variable that named it, or inside the course's folder, not as this machine's path."""
    if origin == f"${DATA_ENV}":
        return f"${DATA_ENV}/{file.relative_to(folder)}"
    try:
        return str(file.resolve().relative_to(base().resolve()))
    except ValueError:
        return str(file)


def download_cifar10(root=None) -> list:
    """Fetch the official CIFAR-10 into ``root`` (default ``data_dir()``) once,
    through torchvision (which checks the archive's md5 and skips what is there).
    Returns the ``info`` of both splits."""
    origin = "default data folder" if root is None else "root argument"
    root = data_dir() if root is None else Path(root).expanduser()
    return [_load_official(root, split, download=True, origin=origin)[2] for split in SPLITS]


def find_cifar10(split: str = "train") -> tuple[str, Path]:
    """``(kind, folder)`` that ``load_cifar10(split)`` would read without a path: kind
    "jpeg" or "official", folder the one to pass as ``path``. Raises DataError (saying how
    to get the data) when there is none."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    kind, folder, _ = _resolve_source(None, split)
    return kind, folder


def describe_source() -> tuple[bool, str]:
    """(found, one line): which CIFAR-10 ``load_cifar10`` would use, or why there is none."""
    env = os.environ.get(DATA_ENV, "").strip()
    try:
        kind, folder = find_cifar10("train")
    except DataError as err:
        return False, str(err)
    if kind == "jpeg":
        return True, (f"{LABELS['jpeg']} from {folder} (via ${DATA_ENV}); zips checked against "
                      "their sha256 on first use")
    via = f" (via ${DATA_ENV}={env})" if env else ""
    return True, f"{LABELS['official']} (torchvision) from {folder / OFFICIAL_FOLDER}{via}"


def _resolve_source(path, split, *, download=False):
    """Pick ("jpeg"|"official", folder, origin) or raise DataError saying what is missing."""
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a folder path (str or Path), got {type(path).__name__}")
        return _classify(Path(path).expanduser(), split, origin="path argument")
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return _classify(Path(env).expanduser(), split, origin=f"${DATA_ENV}")
    root = data_dir()
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
    cache_dir = data_dir() / "cache" if cache_dir is None else Path(cache_dir).expanduser()
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
