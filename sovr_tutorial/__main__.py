"""``python -m sovr_tutorial data --download|--check``: set up CIFAR-10 for the course.

(A sub-command rather than ``python -m sovr_tutorial.data``, because the package
imports its data module on start and runpy would warn about running it twice.)
"""
import sys

from .data import main


def cli(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] != "data":
        print("usage: python -m sovr_tutorial data (--download [--root DIR] | --check)\n"
              "       python -m sovr_tutorial.experiments --help", file=sys.stderr)
        return 2
    return main(argv[1:])


if __name__ == "__main__":
    sys.exit(cli())
