# One-command set-up: every target builds the virtual environment it needs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CASE ?= examples/BraTS-GLI-00001-000
OUT ?= output

.PHONY: install install-dev demo test lint bench train clean

$(BIN)/.installed-runtime: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(BIN)/.installed-dev: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[torch,test]'
	touch $(BIN)/.installed-runtime $@

install: $(BIN)/.installed-runtime
install-dev: $(BIN)/.installed-dev

## demo: synthesize the example case's missing modality with the default weights
demo: $(BIN)/.installed-runtime
	$(BIN)/brasyn-infer $(CASE) $(OUT)

## test: the whole test suite (what .ci/run calls)
test: $(BIN)/.installed-dev
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed-dev
	$(BIN)/python benchmarks/bench.py

train: $(BIN)/.installed-dev
	$(BIN)/python -m training.train

clean:
	rm -rf $(VENV) output .pytest_cache
