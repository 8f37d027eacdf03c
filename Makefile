# One command to set up and run the demo, one to test. Both are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COORD := $(BIN)/coord
DEMO_PLAN ?= examples/hello-service/plan.yaml

.PHONY: install demo demo-stop test lint fmt clean lock

# Installs the versions pinned in constraints.txt (the lock file): a fresh machine gets what CI
# tested. `make lock` moves the pins to the newest versions pyproject.toml's ranges allow.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(COORD) server --detach
	$(COORD) worker --detach
	@# Exit code 0 only when the execution ends Complete.
	$(COORD) run $(DEMO_PLAN) --wait
	@echo
	@echo "The Temporal server and the worker keep running for you to explore (the Web UI link is above)."
	@echo "Stop them with: make demo-stop"

demo-stop: $(STAMP)
	-$(COORD) worker stop
	-$(COORD) server stop

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest

lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '1,3p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable \
	  | grep -v '^#'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
