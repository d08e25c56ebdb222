# Works on a fresh machine with only Python 3.11 and make: every target builds .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  ?= prod

.PHONY: plan test lint typecheck check clean onboard-client verify demo fleet bench promote engine e2e

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet --no-deps -e .  # the console script cipp-hardening
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt bootstrap/requirements.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## plan: offline plan of a stack (STACK=prod): resource tree + the Graph JSON bodies, no CLI or credentials
##       (POLICIES=dir for client stacks, CIPP_CLIENTS=file for the CIPP-API clients; examples/ used by default)
plan: $(VENV)/.runtime
	@$(BIN)/cipp-hardening plan --stack $(STACK) $(if $(JSON),--json $(JSON)) \
	  $(if $(POLICIES),--policies $(POLICIES),$(if $(wildcard examples/$(STACK)-policies),--policies examples/$(STACK)-policies)) \
	  $(if $(CIPP_CLIENTS),--cipp-clients $(CIPP_CLIENTS),$(if $(wildcard examples/$(STACK)-cipp-clients.json),--cipp-clients examples/$(STACK)-cipp-clients.json))

## test: the quick Python-only suite (mocks, emulators over loopback HTTPS, the real dynamic-provider host)
test: $(VENV)/.dev
	$(BIN)/python -m pytest -q --ignore=tests/engine

## engine: builds the real Pulumi CLI and our Python language host into .tools/bin from the Go module proxy
##         (tools/engine/; needs Go 1.26+; a second run with nothing to do takes about a second)
engine:
	@tools/engine/build.sh

## e2e: the real-engine suite (tests/engine/): pulumi preview/up/refresh/destroy, the policy pack and the fleet
##      against the loopback emulators; run `make engine` first (or have a Pulumi CLI on PATH)
e2e: $(VENV)/.dev
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/python -m pytest -q tests/engine

## onboard-client: NAME=contoso TENANT=<guid> [MODE=direct SERVICE_ACCOUNT=<guid>] writes Pulumi.client-NAME.yaml
onboard-client: $(VENV)/.runtime
	@$(BIN)/cipp-hardening onboard --name "$(NAME)" --tenant "$(TENANT)" --mode "$(or $(MODE),gdap)" \
	  $(if $(SERVICE_ACCOUNT),--service-account "$(SERVICE_ACCOUNT)")

## verify: read-only check of a deployed stack (STACK=prod): the scenario matrix against the tenant's live policies
##         (Policy.Read.All; exit 3 on a broken invariant, 4 when a client policy still lacks the MSP exclusion)
verify: $(VENV)/.runtime
	@$(BIN)/cipp-hardening verify --stack $(STACK) $(if $(JSON),--json $(JSON)) \
	  $(if $(STACK_FILE),--stack-file "$(STACK_FILE)")

## demo: the whole article end to end on loopback Graph and CIPP-API emulators (no Azure); `pulumi up` through the
##       real CLI when `make engine` built one (or one is on PATH), in process otherwise (NO_ENGINE=1 forces that)
demo: $(VENV)/.dev
	@$(BIN)/cipp-hardening demo $(if $(NO_ENGINE),--no-engine)

## fleet: ACTION=preview|up|refresh [STACKS='client-*'] [PARALLEL=8] [RESUME=1] [PROJECT_DIR=.] runs the action over many stacks
##        through the Automation API (needs the Pulumi CLI); logs in .fleet/logs/, non-zero exit when a stack failed
fleet: $(VENV)/.runtime
	@$(BIN)/cipp-hardening fleet --action "$(or $(ACTION),preview)" --stacks "$(or $(STACKS),client-*)" \
	  --parallel "$(or $(PARALLEL),8)" $(if $(RESUME),--resume) $(if $(PROJECT_DIR),--project-dir "$(PROJECT_DIR)")

## bench: the benchmarks of BENCHMARKS.md, about forty minutes (the Part D benches run at the real 1 request/s
##        per tenant); QUICK=1: 10x scaled rates with the same ratios, about two minutes
bench: $(VENV)/.dev
	$(BIN)/python bench/bench_plan.py $(if $(QUICK),--quick)
	$(BIN)/python bench/bench_evaluator.py
	$(BIN)/python bench/bench_part_d.py $(if $(QUICK),--quick)
	$(BIN)/python bench/bench_fleet.py $(if $(QUICK),--quick)
	$(BIN)/python bench/bench_reconcile.py $(if $(QUICK),--quick --tenants 50)

## promote: STACK=prod [DAYS=14] [ACCEPT=1] [POLICY_ID=<guid>] Part A report-only → enabled, on evidence: reads the
##          sign-in logs (AuditLog.Read.All), lists who would have been blocked, edits Pulumi.STACK.yaml only when
##          none would (or ACCEPT=1 after reading them); exit 1 when it refused, 2 on an error (README "Rolling out safely")
promote: $(VENV)/.runtime
	@$(BIN)/cipp-hardening promote --stack $(STACK) --days "$(or $(DAYS),14)" $(if $(ACCEPT),--accept) \
	  $(if $(POLICY_ID),--policy-id "$(POLICY_ID)")

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if command -v go >/dev/null 2>&1; then \
	  test -z "$$(gofmt -l tools/engine)" || { gofmt -l tools/engine; echo "gofmt: reformat the files above" >&2; exit 1; }; \
	  (cd tools/engine && go vet ./cmd/...); \
	fi

typecheck: $(VENV)/.dev
	$(BIN)/mypy .

check: test lint typecheck

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
