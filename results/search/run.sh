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
w32n1k="--set width=32 --set n_train=1000 --set epochs=60 --set gairat_burn_in=27"

# 1. AT at eps 8/255 (expected underfit), then 2/255 (expected to fit its training set)
run --methods at $w32n1k --set eps=8/255
run --methods at $w32n1k --set eps=2/255 --set alpha=0.5/255
# 2. where AT fits: the importance-aware methods and SOVR, seed 0
run --methods gairat,sovr-r0.4,mart $w32n1k --set eps=2/255 --set alpha=0.5/255
# 3. AT between the two
run --methods at $w32n1k --set eps=4/255 --set alpha=1/255
# 4. fewer images for longer (can AT fit most of its training set and leave the hard images
#    behind: two peaks?), capacity down and up, and the same compute spent on more images.
#    Session 3 ran these in two streams of one thread side by side (results/README.md).
n500e100="--set n_train=500 --set epochs=100 --set gairat_burn_in=45"
run --methods at --set width=32 $n500e100 --set eps=2/255 --set alpha=0.5/255
run --methods at --set width=32 $n500e100 --set eps=4/255 --set alpha=1/255
run --methods at --set width=16 --set n_train=1000 --set epochs=60 --set gairat_burn_in=27 --set eps=2/255 --set alpha=0.5/255
run --methods at --set width=32 --set n_train=250 --set epochs=100 --set gairat_burn_in=45 --set eps=8/255
run --methods at --set model=small_cnn --set width=16 --set n_train=1000 --set epochs=60 --set gairat_burn_in=27 --set eps=2/255 --set alpha=0.5/255
run --methods at --set width=32 --set n_train=2000 --set epochs=30 --set gairat_burn_in=13 --set eps=4/255 --set alpha=1/255
run --methods at --set width=32 $n500e100 --set eps=8/255
run --methods at --set width=16 --set n_train=1000 --set epochs=60 --set gairat_burn_in=27 --set eps=4/255 --set alpha=1/255
run --methods at --set width=16 $n500e100 --set eps=4/255 --set alpha=1/255
run --methods at --set width=48 --set n_train=500 --set epochs=60 --set gairat_burn_in=27 --set eps=2/255 --set alpha=0.5/255
