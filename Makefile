# bitswarm — two commands matter: `make deploy BOARD=pynq-z2` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
BOARD ?= pynq-z2
MODEL ?= tfc
# Data directory: DATA_DIR=..., else $BITSWARM_DATA_DIR, else ../shared/datasets when it exists
DATA_DIR ?= $(or $(BITSWARM_DATA_DIR),$(if $(wildcard ../shared/datasets),$(abspath ../shared/datasets),))
export BITSWARM_DATA_DIR := $(DATA_DIR)
STAMP := $(VENV)/.bitswarm-installed

.PHONY: install test test-fast lint train search deploy report bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints/overrides.txt constraints/apt-packages.txt
	@bash constraints/install-apt.sh constraints/apt-packages.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (bitswarm needs Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	@# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on CI) every process would recompile torch/TVM/FINN
	$(VENV)/bin/uv pip install --python $(PY) --find-links /opt/wheels \
	  --index-strategy unsafe-best-match --override constraints/overrides.txt --compile-bytecode \
	  "torch==2.13.0+cpu" -e ".[dev]"
	touch $@

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow and not finn and not tvm"

lint: install
	$(VENV)/bin/ruff check .

train: install
	$(PY) -m bitswarm train --model $(MODEL) --board $(BOARD)

search: install
	$(PY) -m bitswarm search --model $(MODEL) --board $(BOARD) --max-avg-bits $(or $(MAX_AVG_BITS),3)

deploy: install
	$(PY) -m bitswarm deploy --board $(BOARD) --model $(MODEL) $(if $(CONFIG),--config $(CONFIG))

report: install
	@test -n "$(RUN)" || { echo "usage: make report RUN=deploy/<board>/<run-id>"; exit 2; }
	$(PY) -m bitswarm report $(RUN)

bench: install
	$(PY) bench/bench_train.py --model tfc --bits fp w2a2 w1a1 default

clean:
	rm -rf runs deploy .pytest_cache
