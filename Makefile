# `make demo` and `make test` do all the set-up themselves: a venv in .venv with the pinned packages.
# Re-running is quick: the venv is rebuilt only when pyproject.toml or constraints.txt change.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Debian packages some parts need (listed one per line in system-packages.txt), installed only when missing.
SYSTEM_PACKAGES := $(shell grep -v '^\#' system-packages.txt 2>/dev/null)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system demo test lint format clean

setup: $(STAMP) system

system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/edgeprune demo

lint: setup
	$(VENV)/bin/ruff check edgeprune tests benchmarks
	$(VENV)/bin/ruff format --check edgeprune tests benchmarks

# one worker per core; a test file stays on one worker (its module fixtures export once); files in the order
# tests/conftest.py gives (those with slow tests first), not xdist's (most tests first)
test: setup lint
	$(PY) -m pytest -n auto --dist loadfile --no-loadscope-reorder --durations=25

format: setup
	$(VENV)/bin/ruff format edgeprune tests benchmarks
	$(VENV)/bin/ruff check --fix edgeprune tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
