# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: build the venv, then run the main job on the bundled example site (SQLite, outbox)
demo: $(STAMP)
	$(BIN)/digest demo .demo

## test: the whole test suite (corpus tests need DIGEST_CORPUS_DIR, PostgreSQL ones DIGEST_TEST_DATABASE_URL)
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff, mypy and the import contracts (the layers), all must be clean
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: render, personalization, gather and send figures
bench: $(STAMP)
	$(BIN)/python bench/render_bench.py
	$(BIN)/python bench/gather_bench.py
	$(BIN)/python bench/send_bench.py --readers 100000

clean:
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache dist build
