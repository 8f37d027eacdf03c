# One command to set up and run the demo, one to test. Both are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COORD := $(BIN)/coord
DEMO_PLAN ?= examples/hello-service/plan.yaml
DEMO_ID := hello-service-$(shell date +%Y%m%d-%H%M%S)
# Until the execution engine lands, executions stop after setup with status Partial.
DEMO_EXPECT := Partial

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
	$(COORD) run $(DEMO_PLAN) --wait --id $(DEMO_ID) || true  # exit 1 = Partial, checked next
	@$(COORD) report $(DEMO_ID) --json | $(BIN)/python -c \
	  'import json, sys; s = json.load(sys.stdin)["status"]; sys.exit(0 if s == "$(DEMO_EXPECT)" else f"demo ended {s}, expected $(DEMO_EXPECT)")'
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

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
