# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Every install takes the versions pinned in constraints.txt (the Dockerfile too); `make lock`
# refreshes them from a clean environment with the newest versions pyproject.toml allows.
CONSTRAINTS := constraints.txt
LOCK_VENV := .lock-venv

.PHONY: venv lock demo test lint typecheck bench clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "obmen needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet '.[dev]'
	{ echo "# Pinned versions of every dependency (runtime and dev). Refresh with: make lock"; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude obmen; } > $(CONSTRAINTS)
	rm -rf $(LOCK_VENV) build

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/obmen demo

# Two processes (pytest-xdist), each with its own Postgres and Redis database: most of a test's time
# is waiting on the workers, brokers and browsers it starts, so two halve the suite's time on two cores.
# By test, not by file (`load`): schemathesis gives its operations one node id, which file
# scheduling would run once. PYTEST_ARGS= runs it in one process.
PYTEST_ARGS ?= -n 2 --dist load

test: $(STAMP)
	$(BIN)/python -m tests.services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.noop

clean:
	rm -rf $(VENV) $(LOCK_VENV) .pytest_cache .ruff_cache .mypy_cache .obmen-demo
