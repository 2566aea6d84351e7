# `make demo` and `make test` do all the set-up themselves: a venv in .venv with the pinned packages.
# Re-running is quick: the venv is rebuilt only when pyproject.toml or constraints.txt change.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/edgeprune demo

lint: setup
	$(VENV)/bin/ruff check edgeprune tests benchmarks

test: lint
	$(PY) -m pytest

format: setup
	$(VENV)/bin/ruff format edgeprune tests benchmarks
	$(VENV)/bin/ruff check --fix edgeprune tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
