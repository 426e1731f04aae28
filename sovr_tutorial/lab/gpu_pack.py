"""What travels to a lent GPU: a data pack cut from the CIFAR-10 JPEG copy, AutoAttack's code,
and a check that they fit beside the working tree.

    python -m sovr_tutorial.lab.gpu_pack build [--source ../shared/data/cifar10-jpeg]
    python -m sovr_tutorial.lab.gpu_pack check      # before any device call: the 64 MiB rule

The device copies the working tree (tracked and untracked-not-ignored files) plus the
folders a call carries, 64 MiB in all; the tracked tree is about 37 MB, the JPEG copy's
zips 59 MB, so only a subset can go. ``build`` writes into ``gpu_pack/`` (git-ignored):

- ``train.zip``, ``test.zip``: class-balanced subsets of the JPEG copy's zips, the JPEG
  bytes copied unchanged (no re-encoding: the pixels are the JPEG copy's), stored
  uncompressed with the copy's member names ``CLASS/NNNN.jpg``;
- the ``pyautoattack`` wheel of the version installed here, without its ``examples/``
  folder: that folder is a 44.8 MB demo checkpoint (``examples/model_test.pt``) which alone
  would break the limit; the code is byte for byte PyPI's (see ``wheel`` in the manifest);
- ``pack.json``: how the subsets were cut, the sha256 of every file, of the source zips and
  of the decoded images, so the far side can say whether it decoded the same pixels.

The device has no network: its command installs the wheel with
``pip install --no-index --no-deps`` and imports this package from the tree (PYTHONPATH).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from ..data import CLASSES, JPEG_SHA256, LABELS, _check_decoded, _decode_zip, verify_sha256
from ..files import atomic_write_text, sha256_file
from ..paths import base
from ..sampling import balanced_subset
from .experiments import git_commit

FORMAT = "sovr-gpu-pack/1"


def pack_dir() -> Path:
    """The pack's folder: ``gpu_pack/`` of the checkout (:func:`sovr_tutorial.paths.base`)."""
    return base() / "gpu_pack"


#: what one device call may carry, the working tree included (the device tool's limit)
LIMIT_BYTES = 64 * 2 ** 20
#: room kept free below the limit for files committed between building the pack and the call
HEADROOM_BYTES = 4 * 2 ** 20
#: 2,000 training images per class and 200 test images per class: 22.6 MB of JPEG, which
#: leaves about 7 MiB under the limit beside today's 37 MB tree
N_TRAIN, N_TEST = 20000, 2000
#: members dropped from the AutoAttack wheel: a demo model and demo weights, never imported
WHEEL_DROP = "pyautoattack/examples/"


# ---------------------------------------------------------------------------- cutting

def _members(zf: zipfile.ZipFile):
    """The JPEG members in the order _decode_zip decodes them: (class index, name, info)."""
    index = {name: i for i, name in enumerate(CLASSES)}
    rows = []
    for info in zf.infolist():
        parts = info.filename.split("/")
        if not info.is_dir() and len(parts) == 2 and parts[0] in index:
            rows.append((index[parts[0]], parts[1], info))
    return sorted(rows, key=lambda r: (r[0], r[1]))


def cut_zip(source: Path, out: Path, n: int, seed: int) -> dict:
    """Copy a class-balanced ``n`` of the JPEG members of ``source`` into ``out``.

    The choice is :func:`sovr_tutorial.sampling.balanced_subset` under ``seed`` applied to
    the member positions (the order load_cifar10 decodes them in), so the pack holds the
    images load_cifar10 would give at those positions, with the same labels.
    """
    with zipfile.ZipFile(source) as zf:
        rows = _members(zf)
        labels = torch.tensor([r[0] for r in rows])
        idx, _ = balanced_subset(torch.arange(len(rows)), labels, n, seed=seed)
        tmp = out.with_name(out.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as dst:
            for i in idx.tolist():
                info = rows[i][2]
                # a fixed date: the same cut gives the same bytes, hence the same sha256
                dst.writestr(zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0)),
                             zf.read(info))
        os.replace(tmp, out)
    per_class = torch.bincount(labels[idx], minlength=len(CLASSES)).tolist()
    return {"file": out.name, "n": int(len(idx)), "per_class": per_class,
            "source_positions_sha256": hashlib.sha256(
                json.dumps(idx.tolist()).encode()).hexdigest()}


def decoded_sha256(x: torch.Tensor, y: torch.Tensor) -> str:
    """sha256 of decoded images and labels: equal only for the very same pixels."""
    h = hashlib.sha256()
    for t in (x, y):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------- the wheel

def download_wheel(folder: Path) -> Path:
    """``pip download pyautoattack==<the version installed here> --no-deps`` into folder."""
    version = importlib.metadata.version("pyautoattack")
    subprocess.run([sys.executable, "-m", "pip", "download", f"pyautoattack=={version}",
                    "--no-deps", "--only-binary=:all:", "-q", "-d", str(folder)], check=True)
    wheels = sorted(folder.glob(f"pyautoattack-{version}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download left no pyautoattack {version} wheel in {folder}")
    return wheels[0]


def slim_wheel(wheel: Path, out_dir: Path) -> dict:
    """The wheel without WHEEL_DROP, same name; RECORD loses the dropped files' lines
    (every other line, with its hash, is kept, so pip installs it as usual)."""
    out = out_dir / wheel.name
    dropped = []
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename.startswith(WHEEL_DROP):
                dropped.append(info.filename)
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = "".join(line for line in data.decode().splitlines(keepends=True)
                               if not line.startswith(WHEEL_DROP)).encode()
            dst.writestr(info, data)
    return {"file": out.name, "bytes": out.stat().st_size, "sha256": sha256_file(out),
            "pypi_sha256": sha256_file(wheel), "pypi_bytes": wheel.stat().st_size,
            "dropped": dropped}


# ---------------------------------------------------------------------------- the pack

def build_pack(source, out=None, *, n_train: int = N_TRAIN, n_test: int = N_TEST,
               seed: int = 0, wheel="download", verify_source: bool = True) -> dict:
    """Write the pack into ``out`` and return its manifest (also ``out/pack.json``).

    source: a folder with the JPEG copy's ``train.zip`` and ``test.zip`` (checked against
    their published sha256 unless ``verify_source=False``, for generated test fixtures).
    wheel: "download" (pip download, then slimmed), a path to a pyautoattack wheel, or None
    (no wheel: a pack for the CPU dry run only).
    """
    source, out = Path(source), Path(out) if out is not None else pack_dir()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.whl"):
        stale.unlink()
    manifest = {"format": FORMAT, "label": LABELS["jpeg"],
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "git_commit": git_commit(), "seed": seed,
                "cut": "sampling.balanced_subset(positions, labels, n, seed) over each zip's "
                       "members in load_cifar10's order (class, then file name); JPEG bytes "
                       "copied unchanged", "splits": {}}
    for split, n in (("train", n_train), ("test", n_test)):
        src = source / f"{split}.zip"
        src_sha = verify_sha256(src, JPEG_SHA256[src.name]) if verify_source else sha256_file(src)
        entry = cut_zip(src, out / src.name, n, seed)
        x, y = _decode_zip(out / src.name)
        _check_decoded(x, y, out / src.name)
        entry.update(source_sha256=src_sha, source_verified=verify_source,
                     sha256=sha256_file(out / src.name),
                     bytes=(out / src.name).stat().st_size, decoded_sha256=decoded_sha256(x, y))
        manifest["splits"][split] = entry
    if wheel == "download":
        with tempfile.TemporaryDirectory() as tmp:
            manifest["wheel"] = slim_wheel(download_wheel(Path(tmp)), out)
    elif wheel is not None:
        manifest["wheel"] = slim_wheel(Path(wheel), out)
    else:
        manifest["wheel"] = None
    atomic_write_text(out / "pack.json", json.dumps(manifest, indent=1))
    return manifest


def load_pack(folder=None):
    """``(x_train, y_train), (x_test, y_test), info`` of a pack, every file sha256-checked.

    ``info["decoded_as_built"]`` says whether this machine's JPEG decoder gave the very
    pixels the pack's builder decoded (another Pillow/libjpeg may differ by a grey level).
    folder: default :func:`pack_dir`.
    """
    folder = Path(folder) if folder is not None else pack_dir()
    manifest = json.loads((folder / "pack.json").read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{folder}/pack.json is not a {FORMAT} manifest")
    parts, same = [], {}
    for split in ("train", "test"):
        entry = manifest["splits"][split]
        verify_sha256(folder / entry["file"], entry["sha256"])
        x, y = _decode_zip(folder / entry["file"])
        _check_decoded(x, y, folder / entry["file"])
        same[split] = decoded_sha256(x, y) == entry["decoded_sha256"]
        parts.append((x, y))
    info = {"source": "jpeg", "label": manifest["label"], "pack": str(folder),
            "pack_git_commit": manifest["git_commit"], "cut": manifest["cut"],
            "pack_seed": manifest["seed"], "decoded_as_built": same,
            "splits": {s: {k: manifest["splits"][s][k] for k in
                           ("n", "per_class", "sha256", "source_sha256", "decoded_sha256")}
                       for s in ("train", "test")}}
    return parts[0], parts[1], info


# ---------------------------------------------------------------------------- the check

def _git_files(root: Path, *extra) -> list:
    out = subprocess.run(["git", "ls-files", "-z", *extra], cwd=root, capture_output=True,
                         check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def _bytes(paths, root: Path) -> int:
    total = 0
    for p in paths:
        try:   # like du -b: apparent sizes; a link counts as itself, a deleted file as 0
            total += os.lstat(root / p).st_size
        except FileNotFoundError:
            pass
    return total


def travel_bytes(root=None, carry=("gpu_pack",)) -> dict:
    """What one device call would send from ``root`` (default the checkout): tracked files,
    untracked files git does not ignore, and the carried folders, in bytes (the tool's rule,
    README of the device)."""
    root = Path(root) if root is not None else base()
    tracked = _bytes(_git_files(root), root)
    untracked = _bytes(_git_files(root, "--others", "--exclude-standard"), root)
    carried = {c: _bytes([p.relative_to(root) for p in (root / c).rglob("*") if p.is_file()],
                         root) for c in carry}
    total = tracked + untracked + sum(carried.values())
    return {"tracked": tracked, "untracked": untracked, "carried": carried, "total": total,
            "limit": LIMIT_BYTES, "headroom": LIMIT_BYTES - total}


def check_travel(root=None, folder=None, *, need_wheel: bool = True) -> dict:
    """Raise unless the pack is complete (files match pack.json) and tree + pack stays
    HEADROOM_BYTES under the limit; returns travel_bytes(). Defaults: the checkout and
    :func:`pack_dir`."""
    root = Path(root) if root is not None else base()
    folder = Path(folder) if folder is not None else pack_dir()
    manifest = json.loads((folder / "pack.json").read_text())
    for entry in list(manifest["splits"].values()) + [manifest.get("wheel")]:
        if entry is None:
            if need_wheel:
                raise FileNotFoundError(f"{folder} has no AutoAttack wheel: rebuild it with "
                                        "`python -m sovr_tutorial.lab.gpu_pack build`")
            continue
        verify_sha256(folder / entry["file"], entry["sha256"])
    sizes = travel_bytes(root, carry=(os.path.relpath(folder, root),))
    if sizes["headroom"] < HEADROOM_BYTES:
        raise RuntimeError(f"tree + pack = {sizes['total'] / 2**20:.1f} MiB, less than "
                           f"{HEADROOM_BYTES / 2**20:.0f} MiB under the device's "
                           f"{LIMIT_BYTES / 2**20:.0f} MiB: build a smaller pack "
                           "(--n-train) or carry less")
    return sizes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sovr_tutorial.lab.gpu_pack",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="cut the pack from the JPEG copy and fetch the wheel")
    b.add_argument("--source", default=os.environ.get("SOVR_TUTORIAL_DATA")
                   or str(base().parent / "shared" / "data" / "cifar10-jpeg"))
    b.add_argument("--out", default=str(pack_dir()))
    b.add_argument("--n-train", type=int, default=N_TRAIN)
    b.add_argument("--n-test", type=int, default=N_TEST)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--wheel", default="download", help="a pyautoattack wheel, 'download' "
                   "(pip download, the default) or 'none'")
    c = sub.add_parser("check", help="the pack is complete and tree + pack fit the limit")
    c.add_argument("--out", default=str(pack_dir()))
    args = p.parse_args(argv)
    if args.cmd == "build":
        m = build_pack(args.source, args.out, n_train=args.n_train, n_test=args.n_test,
                       seed=args.seed, wheel=None if args.wheel == "none" else args.wheel)
        for s, e in m["splits"].items():
            print(f"{s}: {e['n']} images ({e['per_class'][0]} per class), "
                  f"{e['bytes'] / 1e6:.1f} MB, sha256 {e['sha256'][:16]}")
        if m["wheel"]:
            print(f"wheel: {m['wheel']['file']}, {m['wheel']['bytes'] / 1e6:.2f} MB "
                  f"(PyPI's is {m['wheel']['pypi_bytes'] / 1e6:.1f} MB with examples/)")
    sizes = check_travel(None, Path(args.out), need_wheel=True)
    print(f"travels: tracked {sizes['tracked'] / 2**20:.1f} MiB + untracked "
          f"{sizes['untracked'] / 2**20:.2f} MiB + pack "
          f"{sum(sizes['carried'].values()) / 2**20:.1f} MiB = {sizes['total'] / 2**20:.1f} "
          f"MiB of {LIMIT_BYTES / 2**20:.0f} MiB ({sizes['headroom'] / 2**20:.1f} MiB free)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
