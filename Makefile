# sovr-tutorial: `make course` opens the course, `make test` runs every test.
# Everything is idempotent: a second run reuses the venv, the data and the caches.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PYTHONUNBUFFERED := 1
# TORCH=cpu: install torch and torchvision from PyTorch's CPU-only wheel index first (about
# 200 MB instead of about 3 GB of CUDA libraries per machine; for laptops without a GPU).
# Takes effect when the venv is set up (a fresh clone, or after `make clean`).
TORCH       ?=
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(if $(filter-out cpu,$(TORCH)),$(error TORCH=$(TORCH): the only option is TORCH=cpu (or leave it unset)))

.PHONY: setup data course test test-fast test-notebooks bench bench-gpu clean
.PHONY: site
.PHONY: student

setup: $(STAMP) data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(if $(filter cpu,$(TORCH)),$(BIN)/python -m pip install torch torchvision --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

# Official CIFAR-10 through torchvision into data/ (once, checksum verified), unless
# SOVR_TUTORIAL_DATA names a local copy, which is verified by sha256 instead.
data: $(STAMP)
	$(BIN)/python -m sovr_tutorial data --download

# (JupyterLab refuses to run as root unless told; containers and cloud shells often are root)
course: setup
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

# The whole suite: unit tests, slow tests, and every notebook executed at the ci tier.
# The website is built first (from the committed notebooks); tests/test_site.py checks it.
test: setup site
	SOVR_SITE_HTML=$(CURDIR)/build/site/html SOVR_TUTORIAL_TIER=ci $(BIN)/python -m pytest -q -p no:cacheprovider tests notebooks --nbval-lax --durations=15

# Unit tests only (under 3 minutes on 2 cores).
test-fast: setup
	SOVR_TUTORIAL_TIER=ci $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not browser" tests

test-notebooks: setup
	SOVR_TUTORIAL_TIER=ci $(BIN)/python -m pytest -q -p no:cacheprovider notebooks --nbval-lax

# The course website from the committed, executed notebooks (nothing is re-run or
# downloaded): build/site/html/index.html. docs/build.py fails on an error output.
site: $(STAMP)
	$(BIN)/python docs/build.py

# Student copies of every notebook into build/student/notebooks/ (with a copy of results/,
# which notebooks 05 and 06 read): nbgrader's preprocessors through nbconvert replace the
# solutions between ### BEGIN SOLUTION / ### END SOLUTION by stubs, drop hidden tests and
# clear outputs. No nbgrader course folder or database. See docs/student.py.
student: $(STAMP)
	$(BIN)/python docs/student.py --out build/student

# Measured figures, printed: AT throughput vs a plain reference, AutoAttack time, epoch times.
bench: setup
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.epoch_times

# On a CUDA machine: PGD-10 AT epoch time of PreAct ResNet-18 and TFLOP/s vs the measured bf16 peak.
bench-gpu: setup
	$(BIN)/python -m benchmarks.gpu

clean:
	rm -rf $(VENV) data/cache
