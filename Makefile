# Works on a fresh machine with only Python 3.11 and make: every target builds .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  ?= prod

.PHONY: plan test lint typecheck check clean onboard-client

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## plan: offline plan of a stack (STACK=prod): resource tree + the Graph JSON bodies, no CLI or credentials
##       (POLICIES=dir for client stacks, CIPP_CLIENTS=file for the CIPP-API clients; examples/ used by default)
plan: $(VENV)/.runtime
	$(BIN)/python -m cipp_hardening.plan --stack $(STACK) $(if $(JSON),--json $(JSON)) \
	  $(if $(POLICIES),--policies $(POLICIES),$(if $(wildcard examples/$(STACK)-policies),--policies examples/$(STACK)-policies)) \
	  $(if $(CIPP_CLIENTS),--cipp-clients $(CIPP_CLIENTS),$(if $(wildcard examples/$(STACK)-cipp-clients.json),--cipp-clients examples/$(STACK)-cipp-clients.json))

## test: the whole test suite (mocks, emulators over loopback HTTPS, the real dynamic-provider host)
test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

## onboard-client: NAME=contoso TENANT=<guid> [MODE=direct SERVICE_ACCOUNT=<guid>] writes Pulumi.client-NAME.yaml
onboard-client: $(VENV)/.runtime
	$(BIN)/python -m cipp_hardening.onboard --name "$(NAME)" --tenant "$(TENANT)" --mode "$(or $(MODE),gdap)" \
	  $(if $(SERVICE_ACCOUNT),--service-account "$(SERVICE_ACCOUNT)")

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy .

check: test lint typecheck

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
