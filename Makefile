# Each target creates .venv on first use. torch is pinned first so that pip takes the CPU wheel
# on disk instead of resolving a multi-GB CUDA build from PyPI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
OUT ?= out

.PHONY: demo theory compare test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[hep,flow]' $(TORCH)
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev,hep,flow]' $(TORCH)
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/physgan demo --out $(OUT)/demo

theory: $(VENV)/.installed
	$(BIN)/physgan theory --out $(OUT)/theory

# docs/compare.md: GAN, VAE and flow on ring8, grid25 and gluon jets (about an hour on 2 cores).
FAMILIES := ring8 grid25 gluon
compare: $(VENV)/.installed
	for data in $(FAMILIES); do \
	  gan=$$data; [ $$data = gluon ] && gan=gluon-demo; \
	  for cfg in $$gan $$data-vae $$data-flow; do \
	    $(BIN)/physgan train $$cfg --out $(OUT)/compare/runs/$$cfg --resume \
	      --no-progress \
	      || exit 1; \
	  done; \
	  $(BIN)/physgan compare $(OUT)/compare/runs/$$gan $(OUT)/compare/runs/$$data-vae \
	    $(OUT)/compare/runs/$$data-flow --out $(OUT)/compare/$$data || exit 1; \
	done

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/divergences.py --out $(OUT)/bench

clean:
	rm -rf $(VENV) $(OUT)
