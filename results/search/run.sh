#!/usr/bin/env bash
# The CIFAR-10 budget search of results/README.md ("The smallest CIFAR-10 budget"), in the
# order it was run. Each line is one configuration in its own results folder
# (results/cpu-<changes>/); the runner skips finished runs and resumes killed ones, so
# re-running this script continues where it stopped. One torch thread: 2-core laptops.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# a 6-conv CNN (widths 32/64/128), bf16 autocast (fp32 master weights), a small held-out
# slice per epoch, GAIRAT's burn-in at 45% of training as in the gpu tier (50 of 110)
base="--tier cpu --set model=cnn --set precision=bf16 --set n_heldout=200 --no-progress"
run() { echo "== $*"; $PY -m sovr_tutorial.experiments $base "$@"; }

# 1. AT: eps x capacity x data x epochs
run --methods at --set width=32 --set n_train=1000 --set epochs=60 --set eps=8/255 --set gairat_burn_in=27
run --methods at --set width=32 --set n_train=1000 --set epochs=60 --set eps=4/255 --set alpha=1/255 --set gairat_burn_in=27
run --methods at --set width=32 --set n_train=1000 --set epochs=60 --set eps=2/255 --set alpha=0.5/255 --set gairat_burn_in=27
run --methods at --set width=32 --set n_train=2000 --set epochs=60 --set eps=4/255 --set alpha=1/255 --set gairat_burn_in=27
run --methods at --set width=32 --set n_train=1000 --set epochs=100 --set eps=4/255 --set alpha=1/255 --set gairat_burn_in=45
run --methods at --set width=48 --set n_train=1000 --set epochs=60 --set eps=4/255 --set alpha=1/255 --set gairat_burn_in=27
run --methods at --set width=32 --set n_train=2000 --set epochs=60 --set eps=8/255 --set gairat_burn_in=27
