"""`make demo` end to end: emulators, the matrices before, the stacks applied, the matrices and CIPP check after."""

from __future__ import annotations

import io
import os

import pytest
from rich.console import Console

from cipp_hardening.commands.demo import CIPP_CLIENTS, RMM, environment, main, run_demo
from tests.conftest import require_corpus

pytestmark = pytest.mark.e2e

MANAGER, PSA = CIPP_CLIENTS[0][0], CIPP_CLIENTS[2][0]


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
            "CIPP service account from Azure",
            "technician working from home",
        },
        "client-contoso": {"MSP service-provider user (GDAP, tenant 00000000-0000-0000-0000-00000000a001) from Azure"},
        "client-fabrikam": {"MSP service-provider user (GDAP, tenant 00000000-0000-0000-0000-00000000a001) from Azure"},
    }
    assert all(report.matrix.ok and not report.matrix.uncertain for report in outcome.after.values())
    assert outcome.applied["prod graph"] == [
        "Trusted - MSP Office",
        "CIPP Service Account Conditional Access Policy",
        "Block CIPP Access - Outside Trusted IPs",
    ]
    assert outcome.applied["prod"] == {"create": 2}
    assert outcome.applied["client-contoso"] == {"create": 3}  # the conflict is declared but not written
    assert outcome.applied["client-fabrikam"] == {"create": 2}
    assert [p["displayName"] for p in outcome.after["client-contoso"].missing_exclusions] == [
        "Guests: MFA, internal guests exempt"
    ]

    assert outcome.cipp_before is not None
    assert outcome.cipp_after is not None
    assert (outcome.cipp_before.office_status, outcome.cipp_before.outside_status) == (200, 200)
    assert (outcome.cipp_after.office_status, outcome.cipp_after.outside_status) == (200, 403)
    assert outcome.cipp_after.ranges[MANAGER] == ["203.0.113.0/24"]
    assert outcome.cipp_after.ranges[RMM] == ["203.0.113.0/24", "2001:0db8:0000:0000:0000:0000:0000:0000/48"]
    assert outcome.cipp_after.ranges[PSA] == ["Any"]

    assert "demo stand-in for the azuread provider" in text
    assert "every invariant holds" in text
    assert dict(os.environ) == before_env, "the demo leaves the environment as it found it"


@pytest.mark.corpus
def test_the_demo_with_the_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    require_corpus()
    assert main(["--no-engine"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "corpus: j0eyv__ConditionalAccessBaseline" in out
    assert "corpus: AlexFilipin__ConditionalAccess" in out


def test_environment_sets_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIPP_DEMO_A", "before")
    monkeypatch.delenv("CIPP_DEMO_B", raising=False)
    with environment({"CIPP_DEMO_A": None, "CIPP_DEMO_B": "set"}):
        assert "CIPP_DEMO_A" not in os.environ
        assert os.environ["CIPP_DEMO_B"] == "set"
    assert os.environ["CIPP_DEMO_A"] == "before"
    assert "CIPP_DEMO_B" not in os.environ
