# Two commands do everything on a fresh machine: `make demo` and `make test`.
# The first Python whose email package checks the headers it writes (the CVE-2024-6923 fix,
# `verify_generated_headers`: 3.13.0+, 3.12.5+, 3.11.10+, Debian's 3.11.2-6+deb12u3+). The
# digest refuses to start on one without it. `make PYTHON=/path/to/python3` overrides.
# It must also be able to make a venv (Debian's python3 needs the python3-venv package).
HEADER_CHECK := import email.errors, email.policy; email.policy.default.clone(verify_generated_headers=True); email.errors.HeaderWriteError
VENV_CHECK := import ensurepip, venv
ifndef PYTHON
PYTHON := $(shell for p in python3.13 python3.12 /usr/bin/python3 \
	  $(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3) python3; do \
	  if $$p -c '$(HEADER_CHECK); $(VENV_CHECK)' >/dev/null 2>&1; then echo $$p; break; fi; done)
endif
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# A venv built earlier with a Python that lacks the check is rebuilt.
ifneq ($(wildcard $(BIN)/python),)
ifneq ($(shell $(BIN)/python -c '$(HEADER_CHECK)' >/dev/null 2>&1 && echo ok),ok)
$(shell rm -f $(STAMP))
endif
endif

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "make: no Python here checks the headers it writes" \
	  "(verify_generated_headers): install 3.13.0+, 3.12.5+ or 3.11.10+, then make PYTHON=..." >&2; \
	  exit 1; }
	$(PYTHON) -m venv --clear $(VENV)
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

## bench: render, personalization, gather, send and import figures
bench: $(STAMP)
	$(BIN)/python bench/render_bench.py
	$(BIN)/python bench/gather_bench.py
	$(BIN)/python bench/send_bench.py --readers 100000
	$(BIN)/python bench/header_bench.py
	$(BIN)/python bench/import_bench.py --readers 20000

clean:
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache dist build
