# Set-up is part of every target: a fresh Debian machine with Python 3.11 needs
# nothing but `make train` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/fashion
CONFIG ?= experiments/fashion.py

.PHONY: train train-short evaluate report test bench data clean

# Debian's Fashion-MNIST (IDX files in /usr/share/datasets/fashion-mnist).
data:
	@dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || { \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || { \
	    apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }; }

$(VENV)/.core: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.core
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The default experiment: 10,000 steps of the reference DCGAN.
train: data $(VENV)/.core
	$(PY) -m ganjax.train --config=$(CONFIG) --workdir=$(WORKDIR)

# The documented short run: 3,000 steps (15 minutes on 2 idle CPU cores,
# docs/results.md; longer when the machine is shared).
train-short: data $(VENV)/.core
	$(PY) -m ganjax.train --config=$(CONFIG):short --workdir=runs/fashion_short

# Scores the newest checkpoint of WORKDIR (default runs/fashion) by the run's
# own protocol; writes WORKDIR/eval/step_N.json.
evaluate: data $(VENV)/.core
	$(PY) -m ganjax.evaluate --workdir=$(WORKDIR)

# Writes WORKDIR/report/index.html (WORKDIR=runs/fashion_short after
# make train-short).
report: $(VENV)/.core
	$(PY) -m ganjax.report --workdir=$(WORKDIR)

test: data $(VENV)/.test
	$(PY) -m pytest

bench: data $(VENV)/.core
	$(PY) benchmarks/step_time.py

# The virtual environment only: runs/ holds results, which only you delete.
clean:
	rm -rf $(VENV)
