# One command to set up and run the demo, one to test. Both are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COORD := $(BIN)/coord
DEMO_PLAN ?= examples/hello-service/plan.yaml

.PHONY: install jail demo demo-stop test lint fmt clean lock

# Installs the versions pinned in constraints.txt (the lock file): a fresh machine gets what CI
# tested. `make lock` moves the pins to the newest versions pyproject.toml's ranges allow.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,claude-code]'
	touch $(STAMP)

install: $(STAMP) jail

# bubblewrap, the jail plan commands run in, and slirp4netns, its network without the host's
# loopback (docs/security.md): installed when missing and possible (Debian/Ubuntu as
# root); without them the worker runs commands unjailed, or jailed on the host's network, and says so.
jail:
	@command -v bwrap >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -qq bubblewrap || \
	    { apt-get update -qq && apt-get install -y -qq bubblewrap; }; } >/dev/null 2>&1; } || \
	  echo "warning: bwrap (package bubblewrap) is not installed and could not be: plan commands will run without the filesystem jail"
	@command -v slirp4netns >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -qq slirp4netns || \
	    { apt-get update -qq && apt-get install -y -qq slirp4netns; }; } >/dev/null 2>&1; } || \
	  echo "warning: slirp4netns (package slirp4netns) is not installed and could not be: jailed commands will share the host's network, loopback services (Temporal) included"

demo: $(STAMP) jail
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

test: lint jail
	$(BIN)/pytest

lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev,claude-code]'
	{ sed -n '1,3p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable \
	  | grep -v '^#'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
