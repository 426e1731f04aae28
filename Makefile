# sovr-tutorial: `make course` opens the course, `make test` runs every test.
# Everything is idempotent: a second run reuses the venv, the data and the caches.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# $(STAMP): the course's runtime install (what `make course` needs); $(STAMP)-<extra>: the
# tools of one extra of pyproject.toml on top of it (dev for the tests, site, student).
STAMP  := $(VENV)/.installed
export PYTHONUNBUFFERED := 1
# Which torch build the venv gets, chosen once, when torch is not in the venv yet (a fresh
# clone, or after `make clean`), and printed:
#   unset          cpu where no CUDA device is seen (nvidia-smi missing or listing no GPU),
#                  else cuda; cpu falls back to default when TORCH_INDEX cannot be reached
#   TORCH=cpu      torch and torchvision from PyTorch's CPU-only wheel index, TORCH_INDEX
#                  (several times smaller than the CUDA build; for machines without a GPU)
#   TORCH=cuda     from the configured registry (PyPI's Linux wheels are the CUDA build)
#   TORCH=default  from the configured registry, whatever it holds (CI, offline mirrors)
TORCH       ?=
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(if $(filter-out cpu cuda default,$(TORCH)),$(error TORCH=$(TORCH): use TORCH=cpu, TORCH=cuda or TORCH=default, or leave it unset))
# The student's working copy of the notebooks that `make course` opens (created once; a
# re-run adds only the notebooks it lacks). See docs/workspace.py.
WORK        ?= work
LAB_ARGS    ?=
COURSE_JUPYTER := $(VENV)/course-jupyter

.PHONY: setup data course test test-fast test-notebooks bench bench-gpu clean
.PHONY: site
.PHONY: student

setup: $(STAMP) data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	@if $(BIN)/python -c "import torch" 2>/dev/null; then \
	  echo "torch: kept the one in $(VENV) (to choose again: make clean, then make course TORCH=...)"; \
	else \
	  choice="$(TORCH)"; why="as asked"; \
	  if [ -z "$$choice" ]; then \
	    if nvidia-smi -L 2>/dev/null | grep -q GPU; then choice=cuda; why="nvidia-smi lists a GPU"; \
	    else choice=cpu; why="no CUDA device: nvidia-smi $$(command -v nvidia-smi >/dev/null && echo lists no GPU || echo not found)"; \
	      if ! $(BIN)/python -c "import urllib.request as u; u.urlopen('$(TORCH_INDEX)/torch/', timeout=15)" 2>/dev/null; then \
	        choice=default; why="$$why, but $(TORCH_INDEX) cannot be reached"; fi; \
	    fi; \
	  fi; \
	  where="from the configured registry"; [ "$$choice" = cpu ] && where="the CPU build from $(TORCH_INDEX)"; \
	  echo "torch: TORCH=$$choice, $$where ($$why); another: make clean, then make course TORCH=cpu|cuda|default"; \
	  if [ "$$choice" = cpu ]; then $(BIN)/python -m pip install torch torchvision --index-url $(TORCH_INDEX); fi; \
	fi
	$(BIN)/python -m pip install -e .
	@$(BIN)/python -c "import torch; print('torch: installed', torch.__version__, '(CUDA %s build)' % torch.version.cuda if torch.version.cuda else '(CPU build)')"
	touch $(STAMP)

# An extra's tools on top of the runtime install; dev holds the site's and student's too.
$(STAMP)-%: $(STAMP)
	$(BIN)/python -m pip install -e ".[$*]"
	$(if $(filter dev,$*),touch $(STAMP)-site $(STAMP)-student)
	touch $@

# Official CIFAR-10 through torchvision into data/ (once, checksum verified), unless
# SOVR_TUTORIAL_DATA names a local copy, which is verified by sha256 instead.
data: $(STAMP)
	$(BIN)/python -m sovr_tutorial data --download

# JupyterLab in the working copy $(WORK)/ (its notebooks/ a copy of the course's, results/
# and docs/ links to the repository's), with the course's Jupyter config: developer
# extensions that a `make test` may have put in the venv (nbgrader's) are off. LAB_ARGS goes
# to jupyter lab (e.g. LAB_ARGS="--no-browser --port=8890").
# (JupyterLab refuses to run as root unless told; containers and cloud shells often are root)
course: setup
	$(BIN)/python docs/workspace.py $(WORK) --jupyter-config $(COURSE_JUPYTER)
	JUPYTER_CONFIG_PATH=$(abspath $(COURSE_JUPYTER))$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH} \
	  $(BIN)/jupyter lab $(WORK) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The whole suite: unit tests, slow tests, and every notebook executed at the ci tier, once:
# by nbval (--nbval-lax), in a working copy as `make course` makes it, which
# tests/test_workspace.py runs notebook by notebook, checking that git status stays clean.
# The website is built first (from the committed notebooks); tests/test_site.py checks it.
test: setup $(STAMP)-dev site
	SOVR_SITE_HTML=$(CURDIR)/build/site/html SOVR_TUTORIAL_TIER=ci $(BIN)/python -m pytest -q -p no:cacheprovider tests --durations=15

# Unit tests only (under 3 minutes on 2 cores).
test-fast: setup $(STAMP)-dev
	SOVR_TUTORIAL_TIER=ci $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not browser" tests

# nbval on the notebooks where they are (notebooks/figures gets the ci tier's figures).
test-notebooks: setup $(STAMP)-dev
	SOVR_TUTORIAL_TIER=ci $(BIN)/python -m pytest -q -p no:cacheprovider notebooks --nbval-lax

# The course website from the committed, executed notebooks (nothing is re-run or
# downloaded): build/site/html/index.html. docs/build.py fails on an error output.
site: $(STAMP)-site
	$(BIN)/python docs/build.py

# Student copies of every notebook into build/student/notebooks/ (with a copy of results/,
# which notebooks 05 and 06 read): nbgrader's preprocessors through nbconvert replace the
# solutions between ### BEGIN SOLUTION / ### END SOLUTION by stubs, drop hidden tests and
# clear outputs. No nbgrader course folder or database. See docs/student.py.
student: $(STAMP)-student
	$(BIN)/python docs/student.py --out build/student

# Measured figures, printed: AT throughput vs a plain reference, AutoAttack time, epoch times.
bench: setup
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.epoch_times

# On a CUDA machine: PGD-10 AT epoch time of PreAct ResNet-18 and TFLOP/s vs the measured bf16 peak.
bench-gpu: setup
	$(BIN)/python -m benchmarks.gpu

# On a CUDA machine: the paper-scale run of issue 23 (sovr_tutorial/lab/gpu_evidence.py),
# sized by its own measured step times to end inside GPU_BUDGET seconds, writing at most 8
# files into GPU_OUT; results/README.md gives the device command that runs this recipe.
# Needs gpu_pack/ (python -m sovr_tutorial.lab.gpu_pack build); where git is, the pack and
# the 64 MiB that a device call carries are checked first.
GPU_PY     ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
GPU_OUT    ?= build/gpu-evidence
GPU_BUDGET ?= 480
.PHONY: gpu-evidence
gpu-evidence:
	$(if $(wildcard .git),$(GPU_PY) -m sovr_tutorial.lab.gpu_pack check)
	$(GPU_PY) -m sovr_tutorial.lab.gpu_evidence --pack gpu_pack --out $(GPU_OUT) --budget $(GPU_BUDGET)

clean:
	rm -rf $(VENV) data/cache
