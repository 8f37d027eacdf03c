# One command to set up and run the demo, one to test. Both are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COORD := $(BIN)/coord
DEMO_PLAN ?= examples/hello-service/plan.yaml
STATE := .coord/demo

.PHONY: install demo demo-stop test lint fmt clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(COORD) server --detach
	$(COORD) worker --detach
	@# Until the execution engine lands, executions stop after setup with status Partial
	@# (exit 1); anything else (2 invalid plan, 3 waiting on a human, 4 unreachable) fails.
	$(COORD) run $(DEMO_PLAN) --wait; status=$$?; [ $$status -le 1 ]
	@echo
	@echo "Temporal server and worker keep running for you to explore: Web UI http://127.0.0.1:8233"
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

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
