"""`make demo` end to end: emulators, the matrices before, the stacks applied, the matrices and CIPP check after."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from cipp_hardening.commands.demo import CIPP_CLIENTS, RMM, environment, main, run_demo
from tests.conftest import CORPUS, require_corpus
from tests.helpers import ROOT

pytestmark = pytest.mark.e2e

MANAGER, PSA = CIPP_CLIENTS[0][0], CIPP_CLIENTS[2][0]
WORKLOAD_ROWS = {  # cippApi.workloadIdentityPolicies (report-only in the demo): each managed client's token requests
    f"CIPP-API client {client} token from {where}"
    for client, where in (
        (MANAGER, "inside 203.0.113.0/24"),
        (MANAGER, "outside its ranges"),
        (RMM, "inside 203.0.113.0/24"),
        (RMM, "inside 2001:db8::/48"),
        (RMM, "outside its ranges"),
    )
}


def test_the_demo_with_the_bundled_samples() -> None:
    before_env = dict(os.environ)
    output = io.StringIO()
    outcome = run_demo(Console(file=output, width=200), corpus=None)
    text = output.getvalue()

    assert outcome.ok
    broken_before = {name: {r.name for r in report.matrix.failures} for name, report in outcome.before.items()}
    assert broken_before == {
        "prod": {
            "technician outside the trusted ranges",
            "technician holding CIPP superadmin outside the trusted ranges",  # the matrix's CIPP layer
            "CIPP service account from Azure",
            "technician working from home",
            f"CIPP-API client {MANAGER} token from outside its ranges",
            f"CIPP-API client {RMM} token from outside its ranges",
        },
        "client-contoso": {"MSP service-provider user (GDAP, tenant 00000000-0000-0000-0000-00000000a001) from Azure"},
        "client-fabrikam": {"MSP service-provider user (GDAP, tenant 00000000-0000-0000-0000-00000000a001) from Azure"},
    }
    assert all(report.matrix.ok and not report.matrix.uncertain for report in outcome.after.values())
    assert {row.name for row in outcome.after["prod"].matrix.rows} >= WORKLOAD_ROWS
    workload_outside = [r for r in outcome.after["prod"].matrix.rows if r.name in WORKLOAD_ROWS and "outside" in r.name]
    assert {r.expected for r in workload_outside} == {"would_be_blocked"}
    assert all("would be blocked by report-only 'CIPP-API client" in r.actual for r in workload_outside)
    created = outcome.applied["prod graph"]
    assert sorted(created) == sorted(
        [
            "Trusted - MSP Office",
            "CIPP Service Account Conditional Access Policy",
            "Block CIPP Access - Outside Trusted IPs",
            *(f"CIPP-API client {c} - allowed ranges" for c in (MANAGER, RMM)),
            *(f"CIPP-API client {c} - block outside allowed ranges" for c in (MANAGER, RMM)),
        ]
    )
    locations = [i for i, name in enumerate(created) if name.endswith((" - allowed ranges", "Office"))]
    assert max(locations) < min(set(range(len(created))) - set(locations)), "named locations before policies"
    assert outcome.applied["prod"] == {"create": 4}  # two clients, the CIPP role techs and the destroy guard
    # The conflict is declared but not written; each client stack also records its Part D journal.
    assert outcome.applied["client-contoso"] == {"create": 3 + 1}
    assert outcome.applied["client-fabrikam"] == {"create": 2 + 1}
    assert [p["displayName"] for p in outcome.after["client-contoso"].missing_exclusions] == [
        "Guests: MFA, internal guests exempt"
    ]

    assert outcome.cipp_before is not None
    assert outcome.cipp_after is not None
    assert (outcome.cipp_before.office_status, outcome.cipp_before.outside_status) == (200, 200)
    assert (outcome.cipp_after.office_status, outcome.cipp_after.outside_status) == (200, 403)
    # The technician of CIPP role techs: open before; after, CIPP refuses home while Part A is only report-only.
    assert (outcome.cipp_before.technician_office, outcome.cipp_before.technician_home) == (200, 200)
    assert (outcome.cipp_after.technician_office, outcome.cipp_after.technician_home) == (200, 403)
    assert "Entra would have let this sign-in through: CIPP refuses it" in " ".join(text.split())
    assert outcome.cipp_after.ranges[MANAGER] == ["203.0.113.0/24"]
    assert outcome.cipp_after.ranges[RMM] == ["203.0.113.0/24", "2001:0db8:0000:0000:0000:0000:0000:0000/48"]
    assert outcome.cipp_after.ranges[PSA] == ["Any"]

    assert "demo stand-in for the azuread provider" in text
    # The last line tells the truth about every stack: contoso's conflict is reported, not written, so it stays.
    last = " ".join(text.strip().splitlines()[-3:])
    last = " ".join(last.split())
    assert (
        "prod: invariants hold; client-contoso: invariants hold, 1 policy(ies) still without the MSP exclusion" in last
    )
    assert "('Guests: MFA, internal guests exempt'); client-fabrikam: invariants hold;" in last
    assert "CIPP-API: the managed client and the technician role are refused from outside (403)" in last
    assert "every invariant holds" not in text
    assert dict(os.environ) == before_env, "the demo leaves the environment as it found it"


@pytest.mark.corpus
def test_the_demo_with_the_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    require_corpus()
    assert main(["--no-engine", "--corpus", str(CORPUS)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "corpus: j0eyv__ConditionalAccessBaseline" in out
    assert "corpus: AlexFilipin__ConditionalAccess" in out


def test_a_corpus_without_the_baselines_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["--no-engine", "--corpus", str(tmp_path)])
    assert refused.value.code == 2
    assert "no folder j0eyv__ConditionalAccessBaseline, AlexFilipin__ConditionalAccess in it" in capsys.readouterr().err


def test_environment_sets_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIPP_DEMO_A", "before")
    monkeypatch.delenv("CIPP_DEMO_B", raising=False)
    with environment({"CIPP_DEMO_A": None, "CIPP_DEMO_B": "set"}):
        assert "CIPP_DEMO_A" not in os.environ
        assert os.environ["CIPP_DEMO_B"] == "set"
    assert os.environ["CIPP_DEMO_A"] == "before"
    assert "CIPP_DEMO_B" not in os.environ


def test_the_demo_installs_only_what_it_runs() -> None:
    """Every distribution the demo imports is in the closure of requirements-demo.txt, and azure-native is not."""
    imported = top_level_modules("import cipp_hardening.commands.demo") - top_level_modules("pass")  # .pth hooks
    by_module = importlib.metadata.packages_distributions()
    used = {canonical(dist) for module in imported for dist in by_module.get(module, [])}
    allowed = requirement_closure(ROOT / "requirements-demo.txt")
    assert used - allowed - {"cipp-hardening"} == set()
    assert "trustme" in allowed
    assert "pulumi-azure-native" not in allowed
    assert "pytest" not in allowed


def top_level_modules(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(json.loads(run.stdout))


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(path: Path) -> set[str]:
    """The distributions a requirements file installs: its names (following -r) and their dependencies."""
    names: list[str] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names += sorted(requirement_closure(path.parent / line[3:].strip()))
        elif line:
            names.append(canonical(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0]))
    closure: set[str] = set()
    while names:
        name = names.pop()
        if name in closure:
            continue
        closure.add(name)
        for requirement in importlib.metadata.requires(name) or []:
            if "extra ==" not in requirement:
                names.append(canonical(re.split(r"[<>=!~\[; (]", requirement, maxsplit=1)[0]))
    return closure
