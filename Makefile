# Works on a fresh machine with only Python 3.11 and make: every target builds the environment it needs itself.
# .venv is the program's (Pulumi.yaml, policy/PulumiPolicy.yaml): requirements.txt, the console script and, for
# the policy pack, pulumi-policy. .venv-dev is the developers': the test, lint and type-check tools and the
# bootstrap's pulumi-azure-native, layered on .venv (a .pth adds .venv's site-packages after its own), so
# `pulumi about` in the program lists what users run and nothing else (docs/engine.md, "What the CLI prints").
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEV    := .venv-dev
DEVBIN := $(DEV)/bin
STACK  ?= prod
# `make plan` alone shows the example (README first screen); STACK=… (command line or environment) plans that stack.
PLAN_STACK := $(if $(filter command line environment,$(origin STACK)),$(STACK),example)

.PHONY: plan snapshot test lint typecheck check clean onboard-client onboard-clients verify demo fleet bench promote adopt engine e2e chaos mutants

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet --no-deps -e .  # the console script cipp-hardening
	@# pip compiles what it installs, not an editable project: without this, a machine that sets
	@# PYTHONDONTWRITEBYTECODE (many CI images do) compiles the program from source on every run (BENCHMARKS.md §9)
	$(BIN)/python -m compileall -q cipp_hardening components dynamic_providers service_clients policy >/dev/null
	touch $@

# The demo's own small set (requirements-demo.txt): not the dev tools nor the bootstrap's azure-native.
$(VENV)/.demo: requirements-demo.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-demo.txt
	touch $@

# The policy pack runs in the program's venv (policy/PulumiPolicy.yaml names ../.venv): pulumi-policy there.
$(VENV)/.policy: policy/requirements.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r policy/requirements.txt
	touch $@

# A stack with `breakGlassAlerts` only (docs/break-glass-alerts.md): the program's pulumi-azure-native. The CI
# jobs that run the MSP stack install it; `make test` and the e2e sandbox never put it in .venv.
$(VENV)/.alerts: requirements-alerts.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-alerts.txt
	touch $@

# No pip of its own: .venv's (upgraded above) is on its path and installs into .venv-dev, the running prefix;
# what .venv already holds satisfies requirements-dev.txt's `-r requirements.txt` and is not installed twice.
$(DEVBIN)/python: | $(BIN)/python
	$(BIN)/python -m venv --without-pip $(DEV)
	$(BIN)/python -c 'import sysconfig; print("import site; site.addsitedir(%r)" % sysconfig.get_path("purelib"))' \
	  > "$$($(DEVBIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/cipp-hardening-runtime.pth"

$(DEV)/.dev: requirements.txt requirements-dev.txt bootstrap/requirements.txt $(VENV)/.policy | $(DEVBIN)/python
	$(DEVBIN)/python -m pip install --quiet -r requirements-dev.txt
	@if [ -e $(VENV)/.dev ]; then echo 'note: $(VENV) dates from before $(DEV) and still holds the dev tools and' \
	  'pulumi-azure-native, which `pulumi about` then lists: `make clean` once rebuilds both' >&2; fi
	touch $@

## plan: offline plan of a stack (STACK=prod; without STACK, the example stack Pulumi.example.yaml): resource tree + the Graph JSON bodies, no CLI or credentials; it
##       lists the snapshots it reads (the stack's offlineSnapshot key, or snapshots/STACK/ from `make snapshot`;
##       POLICIES=dir, CIPP_CLIENTS=file, DIRECTORY=file override them); exit codes: `cipp-hardening plan --help`
plan: $(VENV)/.runtime
	@$(BIN)/cipp-hardening plan --stack "$(PLAN_STACK)" $(if $(JSON),--json "$(JSON)") \
	  $(if $(POLICIES),--policies "$(POLICIES)") $(if $(CIPP_CLIENTS),--cipp-clients "$(CIPP_CLIENTS)") \
	  $(if $(DIRECTORY),--directory "$(DIRECTORY)")

## snapshot: STACK=client-x [OUT=dir] saves the tenant's CA policies and named locations (GET only, Policy.Read.All)
##           and the directory entries of the names the stack uses, into snapshots/STACK/ where `make plan` finds them
snapshot: $(VENV)/.runtime
	@$(BIN)/cipp-hardening snapshot --stack "$(STACK)" $(if $(OUT),--out "$(OUT)")

## test: the quick Python-only suite (mocks, emulators over loopback HTTPS, the real dynamic-provider host)
test: $(DEV)/.dev
	$(DEVBIN)/python -m pytest -q --ignore=tests/engine --ignore=tests/chaos

## engine: builds the real Pulumi CLI and our Python language host into .tools/bin from the Go module proxy
##         (tools/engine/; needs Go 1.26+; a second run with nothing to do takes about a second)
engine:
	@tools/engine/build.sh

## e2e: the real-engine suite (tests/engine/): pulumi preview/up/refresh/destroy, the policy pack and the fleet
##      against the loopback emulators; run `make engine` first (or have a Pulumi CLI on PATH)
e2e: $(DEV)/.dev
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(DEVBIN)/python -m pytest -q tests/engine

## chaos: the chaos suite (tests/chaos/): a client stack's `pulumi up`/`destroy` SIGKILLed at seeded instants and
##        recovered as docs/fleet.md says, portal edits during the runs, lagging and malformed reads, against the
##        emulators, and Part C's; SEED=n draws other instants (default 20); about 5 minutes; `make engine` first
chaos: $(DEV)/.dev
	PATH="$(CURDIR)/.tools/bin:$$PATH" CHAOS_SEED="$(or $(SEED),20)" $(DEVBIN)/python -m pytest -q tests/chaos

## onboard-client: NAME=contoso TENANT=<guid> [MODE=direct SERVICE_ACCOUNT=<guid>] writes Pulumi.client-NAME.yaml
onboard-client: $(VENV)/.runtime
	@$(BIN)/cipp-hardening onboard --name "$(NAME)" --tenant "$(TENANT)" --mode "$(or $(MODE),gdap)" \
	  $(if $(SERVICE_ACCOUNT),--service-account "$(SERVICE_ACCOUNT)")

## onboard-clients: FROM=cipp [STACK=prod] [DRY_RUN=1] [EXCLUDE=file] [SERVICE_ACCOUNTS=file] one client stack file per
##                  tenant in CIPP's tenant list not yet onboarded (CIPP_API_MANAGER_SECRET: the manager client's secret)
onboard-clients: $(VENV)/.runtime
	@$(BIN)/cipp-hardening onboard --from "$(FROM)" --msp-stack "$(STACK)" $(if $(DRY_RUN),--dry-run) \
	  $(if $(EXCLUDE),--exclude "$(EXCLUDE)") $(if $(SERVICE_ACCOUNTS),--service-accounts "$(SERVICE_ACCOUNTS)")

## verify: read-only check of a deployed stack (STACK=prod): the scenario matrix against the tenant's live policies
##         (Policy.Read.All; exit 3 on a broken invariant, 4 when a client policy still lacks the MSP exclusion)
verify: $(VENV)/.runtime
	@$(BIN)/cipp-hardening verify --stack $(STACK) $(if $(JSON),--json $(JSON)) \
	  $(if $(STACK_FILE),--stack-file "$(STACK_FILE)") $(if $(SINCE),--since $(SINCE)) \
	  $(if $(DEPLOYER),--deployer $(DEPLOYER)) $(if $(AGENT),--optimization-agent $(AGENT))

## demo: the whole article end to end on loopback Graph and CIPP-API emulators (no Azure); `pulumi up` through the
##       real CLI when `make engine` built one (or one is on PATH), in process otherwise (NO_ENGINE=1 forces that)
demo: $(VENV)/.demo
	@$(BIN)/cipp-hardening demo $(if $(NO_ENGINE),--no-engine) $(if $(CORPUS),--corpus "$(CORPUS)")

## fleet: ACTION=preview|up|refresh [STACKS='client-*'] [PARALLEL=8] [RESUME=1] [RECOVER=1] [PROJECT_DIR=.] runs the action over many stacks
##        through the Automation API (needs the Pulumi CLI); logs in .fleet/logs/, non-zero exit when a stack failed;
##        a Markdown summary in .fleet/summary.md, also appended to SUMMARY=file (CI: $GITHUB_STEP_SUMMARY)
##        SECRETS_PROVIDER=url: creates the stacks that have a file but no state yet (onboard-clients writes files
##        only, no `pulumi stack init`) with that secrets provider; without it such a stack fails (docs/fleet.md)
fleet: $(VENV)/.runtime
	@$(BIN)/cipp-hardening fleet --action "$(or $(ACTION),preview)" --stacks "$(or $(STACKS),client-*)" \
	  --parallel "$(or $(PARALLEL),8)" $(if $(RESUME),--resume) $(if $(RECOVER),--recover) \
	  $(if $(PROJECT_DIR),--project-dir "$(PROJECT_DIR)") \
	  $(if $(SUMMARY),--summary "$(SUMMARY)") $(if $(SECRETS_PROVIDER),--secrets-provider "$(SECRETS_PROVIDER)")

## bench: the benchmarks of BENCHMARKS.md, about forty minutes (the Part D benches run at the real 1 request/s
##        per tenant); QUICK=1: 10x scaled rates with the same ratios, about two minutes
bench: $(DEV)/.dev
	$(DEVBIN)/python bench/bench_plan.py $(if $(QUICK),--quick)
	$(DEVBIN)/python bench/bench_evaluator.py
	$(DEVBIN)/python bench/bench_part_d.py $(if $(QUICK),--quick)
	$(DEVBIN)/python bench/bench_fleet.py $(if $(QUICK),--quick)
	$(DEVBIN)/python bench/bench_reconcile.py $(if $(QUICK),--quick --tenants 50)
	$(DEVBIN)/python bench/bench_onboard.py
	$(DEVBIN)/python bench/bench_part_c_window.py

## mutants: [MODULES='evaluator drift'] [JOBS=2] the mutation check of the rule modules (tools/mutants.py): one operator or
##          constant changed at a time, the module's quick tests run against each; killed/total per module and every
##          survivor (docs/mutation.md); not part of `make test` (about half an hour on two cores)
mutants: $(DEV)/.dev
	$(DEVBIN)/python tools/mutants.py --jobs "$(or $(JOBS),2)" $(MODULES)

## promote: STACK=prod [DAYS=14] [ACCEPT=1] [POLICY_ID=<guid>] Part A report-only → enabled, on evidence: reads the
##          sign-in logs (AuditLog.Read.All), lists who would have been blocked, edits Pulumi.STACK.yaml only when
##          none would (or ACCEPT=1 after reading them); exit 1 when it refused, 2 on an error (README "Rolling out safely")
promote: $(VENV)/.runtime
	@$(BIN)/cipp-hardening promote --stack $(STACK) --days "$(or $(DAYS),14)" $(if $(ACCEPT),--accept) \
	  $(if $(POLICY_ID),--policy-id "$(POLICY_ID)")

## adopt: STACK=prod [DRY_RUN=1] [IMPORT_FILE=f] finds the named location and policies made by hand (by name, else by content),
##        shows what `pulumi up` will change on each, writes their ids under cipp-hardening:adopt (docs/adopt.md)
adopt: $(VENV)/.runtime
	@$(BIN)/cipp-hardening adopt --stack $(STACK) $(if $(STACK_FILE),--stack-file "$(STACK_FILE)") $(if $(DRY_RUN),--dry-run) \
	  $(if $(IMPORT_FILE),--import-file "$(IMPORT_FILE)")

lint: $(DEV)/.dev
	$(DEVBIN)/ruff check .
	$(DEVBIN)/ruff format --check .
	@if command -v go >/dev/null 2>&1; then \
	  test -z "$$(gofmt -l tools/engine)" || { gofmt -l tools/engine; echo "gofmt: reformat the files above" >&2; exit 1; }; \
	  (cd tools/engine && go vet ./...); \
	fi

typecheck: $(DEV)/.dev
	$(DEVBIN)/mypy .

check: test lint typecheck

clean:
	rm -rf $(VENV) $(DEV) .pytest_cache .mypy_cache .ruff_cache
