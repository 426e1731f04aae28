"""``python -m sovr_tutorial data --download|--check``: set up CIFAR-10 for the course.

(A sub-command rather than ``python -m sovr_tutorial.data``, because the package
imports its data module on start and runpy would warn about running it twice.)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .data import (DATA_ENV, SPLITS, DataError, describe_source,
                   download_cifar10, load_cifar10)
from .paths import data_dir


def data_main(argv=None) -> int:
    """The ``data`` sub-command; returns the exit status."""
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
                        help=f"where to download the official CIFAR-10 (default: {data_dir()})")
    args = parser.parse_args(argv)
    try:
        if args.check:
            ok, text = describe_source()
            print(text if ok else f"no data: {text}")
            return 0 if ok else 1
        env = os.environ.get(DATA_ENV, "").strip()
        if env and args.root is None:
            for split in SPLITS:
                try:
                    x, _, info = load_cifar10(split)
                except DataError as err:
                    raise DataError(f"{err} ({DATA_ENV} is set, so --download only checks that "
                                    f"copy: unset {DATA_ENV} to download the official CIFAR-10, "
                                    f"or add --root {env} to download it there.)") from err
                state = "cache" if info.get("cached") else "decoded"
                print(f"{info['label']} {split}: {tuple(x.shape)} from {info['path']} ({state})")
            return 0
        for info in download_cifar10(args.root):
            print(f"{info['label']} {info['split']}: {info['n']} images in {info['path']}")
        root = data_dir() if args.root is None else args.root.expanduser()
        if args.root is not None and root.resolve() != data_dir().resolve():
            print(f"To use it, pass path={str(root)!r} to load_cifar10 or set {DATA_ENV}={root}")
        return 0
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def cli(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] != "data":
        print("usage: python -m sovr_tutorial data (--download [--root DIR] | --check)\n"
              "       python -m sovr_tutorial.lab.experiments --help", file=sys.stderr)
        return 2
    return data_main(argv[1:])


if __name__ == "__main__":
    sys.exit(cli())
