"""Throughput of the Conditional Access evaluator: corpus policies x ~50 varied sign-ins.

Run from the repository root:  .venv-dev/bin/python bench/bench_evaluator.py
Counts policy x sign-in evaluations per second (verdicts included), best of 3 runs of >= 2 s each.
Without the policy corpus (tests/conftest.py CORPUS) it falls back to a synthetic policy set and says so.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cipp_hardening.evaluator import ExternalUser, PolicySet, SignIn  # noqa: E402
from cipp_hardening.policy_files import load_named_location_folder, load_policy_folder  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
RUN_SECONDS = 2.0
RUNS = 3


def sign_ins() -> list[SignIn]:
    """About 50 sign-ins varying user kind, app, IP, client, platform, country and risk."""
    identities: list[dict[str, Any]] = [
        {"user_id": "aaaaaaaa-0000-0000-0000-000000000001"},
        {
            "user_id": "aaaaaaaa-0000-0000-0000-000000000002",
            "role_template_ids": {"62e90394-69f5-4237-9190-012177145e10"},
        },
        {"user_id": "aaaaaaaa-0000-0000-0000-000000000003", "group_ids": {"ceeac9b8-ddf5-48cb-afcb-e2ab8bfd1a57"}},
        {"user_id": "aaaaaaaa-0000-0000-0000-000000000004", "external": ExternalUser("serviceProvider", "cccc")},
        {"user_id": "aaaaaaaa-0000-0000-0000-000000000005", "external": ExternalUser("b2bCollaborationGuest")},
    ]
    contexts: list[dict[str, Any]] = [
        {"client_ip": "87.92.49.122", "country": "FI", "application_id": "00000003-0000-0ff1-ce00-000000000000"},
        {"client_ip": "203.0.113.9", "client_app_type": "exchangeActiveSync", "app_groups": frozenset()},
        {"client_ip": "2001:db8::7", "device_platform": "iOS", "client_app_type": "mobileAppsAndDesktopClients"},
        {"client_ip": "198.51.100.4", "country": "NL", "device_platform": "windows", "sign_in_risk": "high"},
        {"client_ip": "192.0.2.1", "device_platform": "macOS", "app_groups": frozenset({"MicrosoftAdminPortals"})},
        {"client_ip": "10.1.2.3", "user_action": "urn:user:registersecurityinfo", "authentication_flow": "none"},
        {"client_ip": "203.0.113.77", "country": "US", "client_app_type": "other", "user_risk": "high"},
        {"client_ip": "2001:db8:1::1", "device_platform": "android", "insider_risk": "elevated"},
        {"client_ip": "198.51.100.200", "authentication_context": "c1", "application_id": None},
        {"client_ip": "87.92.49.123", "country": "BE", "device_platform": "linux"},
    ]
    scenarios = []
    for identity, context in itertools.product(identities, contexts):
        fields = {"application_id": "dddddddd-0000-0000-0000-000000000001", **identity, **context}
        scenarios.append(SignIn(**fields))
    return scenarios


def synthetic_policies() -> list[dict[str, Any]]:
    users = {"includeUsers": ["All"], "excludeGroups": ["bbbbbbbb-0000-0000-0000-000000000001"]}
    return [
        {
            "id": f"synthetic-{i}",
            "displayName": f"synthetic {i}",
            "state": "enabled",
            "conditions": {
                "users": users,
                "applications": {"includeApplications": ["All"]},
                "clientAppTypes": ["all"] if i % 2 else ["exchangeActiveSync", "other"],
                "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]},
            },
            "grantControls": {"operator": "OR", "builtInControls": ["block" if i % 3 == 0 else "mfa"]},
        }
        for i in range(60)
    ]


def load() -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    if CORPUS.is_dir():
        return load_policy_folder(CORPUS), load_named_location_folder(CORPUS), "corpus"
    return synthetic_policies(), [], "synthetic (policy corpus absent)"


def one_run(policy_set: PolicySet, scenarios: list[SignIn]) -> float:
    evaluations, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < RUN_SECONDS:
        for scenario in scenarios:
            policy_set.evaluate(scenario)
        evaluations += len(scenarios) * len(policy_set.policies)
    return evaluations / elapsed


def main() -> int:
    policies, locations, source = load()
    policy_set = PolicySet.compile(policies, locations)
    scenarios = sign_ins()
    best = max(one_run(policy_set, scenarios) for _ in range(RUNS))
    print(
        f"evaluator: {len(policies)} policies x {len(scenarios)} scenarios, "
        f"{best:,.0f} evals/s (best of {RUNS}; {source})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
