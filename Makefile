# The README's commands. `make run` and `make test` each create or reuse .venv on their own.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.microx-installed
# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build (docs/MEASUREMENTS.md).
TORCH := torch==2.13.0
PORT ?= 7860

.PHONY: setup run test lint format bench browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

browser:
	bash scripts/install_browser.sh

# The main job: the Space app on the committed demo checkpoint, on http://127.0.0.1:$(PORT).
run: $(STAMP)
	OMP_NUM_THREADS=2 $(BIN)/python space/app.py --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) browser lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest

bench: $(STAMP)
	OMP_NUM_THREADS=2 $(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .gradio build *.egg-info
