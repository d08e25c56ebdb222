"""Microsoft's own What If (`POST /identity/conditionalAccess/evaluate`, docs/graph-ca.md §5) against ours.

`verify` asks Graph for each scenario row it can express and compares, policy by policy, which policies
apply: a policy one side says applies and the other says definitely does not is a disagreement, which fails
`verify` (docs/assurance.md). Neither side's "cannot tell" counts against the other: our `cannot_tell`, or
Microsoft's `notEnoughInformation` (§5.2: a condition the request leaves out does not apply).

What is asked (§5.1): member users only, by a real object id — synthetic scenario users (uuid5 ids of
`scenarios.synthetic_user`) and service-provider users exist in no directory; a sign-in that names no
application asks for `STAND_IN_APP` (Microsoft Graph, which CIPP calls), and our side is evaluated with the
same application so both answer the same question.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cipp_hardening.evaluator import ENABLED, REPORT_ONLY, Outcome, PolicySet, SignIn

EVALUATE = "identity/conditionalAccess/evaluate"
STAND_IN_APP = "00000003-0000-0000-c000-000000000000"  # Microsoft Graph
NOT_ENOUGH_INFORMATION = "notEnoughInformation"
_EVALUATED_STATES = frozenset({ENABLED, REPORT_ONLY})  # §5.2: What If evaluates only these
_USER_ACTIONS = {
    "urn:user:registersecurityinfo": "registerSecurityInformation",
    "urn:user:registerdevice": "registerOrJoinDevices",
}

Ask = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Disagreement:
    scenario: str
    ours: str  # our verdict and the policies we say apply
    microsoft: str  # Microsoft's, the same way
    policies: tuple[str, ...]  # the policies the two disagree on

    @property
    def message(self) -> str:
        return (
            f"'{self.scenario}': Microsoft's What If disagrees on {', '.join(self.policies)}. "
            f"Ours: {self.ours}. Microsoft: {self.microsoft}"
        )


@dataclass(frozen=True)
class WhatIfResult:
    asked: int = 0
    skipped: tuple[str, ...] = ()  # rows that What If cannot express, with why
    disagreements: tuple[Disagreement, ...] = ()
    unavailable: str = ""  # why nothing was asked (permission, licence, the emulator), said, never a failure

    def to_json(self) -> dict[str, Any]:
        return {
            "asked": self.asked,
            "skipped": list(self.skipped),
            "disagreements": [dataclasses.asdict(d) for d in self.disagreements],
            "unavailable": self.unavailable or None,
        }


def askable(sign_in: Any) -> str | None:
    """Why What If cannot be asked about this sign-in, or None."""
    if not isinstance(sign_in, SignIn):
        return "a workload identity's token request"
    if sign_in.external is not None:
        return f"a {sign_in.external.kind} user, who has no object in the tenant"
    try:
        version = uuid.UUID(sign_in.user_id).version
    except ValueError:
        return f"user {sign_in.user_id!r} is not an object id"
    if version == 5:
        return "a synthetic scenario user"
    if sign_in.authentication_context:
        return "an authentication-context sign-in"
    return None


def as_asked(sign_in: SignIn) -> SignIn:
    """The sign-in with the application What If is asked about (STAND_IN_APP when it names none)."""
    if sign_in.user_action or (sign_in.application_id and sign_in.application_id.lower() != "all"):
        return sign_in
    return dataclasses.replace(sign_in, application_id=STAND_IN_APP)


def request_body(sign_in: SignIn) -> dict[str, Any]:
    """The evaluate body for one sign-in (§5.1)."""
    if sign_in.user_action:
        context: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.userActionContext",
            "userAction": _USER_ACTIONS.get(sign_in.user_action.lower(), sign_in.user_action),
        }
    else:
        context = {
            "@odata.type": "#microsoft.graph.applicationContext",
            "includeApplications": [sign_in.application_id],
        }
    conditions: dict[str, Any] = {"clientAppType": sign_in.client_app_type}
    optional = {
        "ipAddress": sign_in.client_ip,
        "country": sign_in.country,
        "devicePlatform": sign_in.device_platform,
        "signInRiskLevel": sign_in.sign_in_risk,
        "userRiskLevel": sign_in.user_risk,
        "insiderRiskLevel": sign_in.insider_risk,
    }
    conditions.update({key: value for key, value in optional.items() if value is not None})
    if sign_in.authentication_flow:
        conditions["authenticationFlow"] = {"transferMethod": sign_in.authentication_flow}
    return {
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": sign_in.user_id},
        "signInContext": context,
        "signInConditions": conditions,
        "appliedPoliciesOnly": False,
    }


def _verdict(applying: Iterable[str], policies: Mapping[str, Mapping[str, Any]]) -> str:
    """blocked / granted with controls / granted, from the enabled policies that apply (§5.3)."""
    enforced = [policies[key] for key in applying if key in policies and policies[key].get("state") == ENABLED]
    controls = [c for p in enforced for c in ((p.get("grantControls") or {}).get("builtInControls") or [])]
    if "block" in controls:
        return "blocked"
    return f"granted with {'/'.join(sorted(set(controls)))}" if controls else "granted"


def _named(keys: Iterable[str], policies: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return sorted(f"'{policies[k].get('displayName', k)}'" if k in policies else k for k in keys)


def compare(
    scenario: str,
    sign_in: SignIn,
    policy_set: PolicySet,
    answer: Sequence[Mapping[str, Any]],
    policies: Mapping[str, Mapping[str, Any]],
) -> Disagreement | None:
    """Ours against Microsoft's for one sign-in; `policies` by lower-case id."""
    results = [r for r in policy_set.evaluate(sign_in).results if r.policy.state in _EVALUATED_STATES]
    ours_apply = {r.key.lower() for r in results if r.outcome is Outcome.APPLIES}
    ours_unknown = {r.key.lower() for r in results if r.outcome is Outcome.CANNOT_TELL}
    theirs_apply = {str(r.get("id", "")).lower() for r in answer if r.get("policyApplies") is True}
    theirs_unknown = {
        str(r.get("id", "")).lower() for r in answer if NOT_ENOUGH_INFORMATION in str(r.get("analysisReasons", ""))
    }
    answered = {str(r.get("id", "")).lower() for r in answer}
    differ = (ours_apply - theirs_apply - theirs_unknown) & answered | (theirs_apply - ours_apply - ours_unknown)
    if not differ:
        return None
    ours = f"{_verdict(ours_apply, policies)} (applying: {', '.join(_named(ours_apply, policies)) or 'none'})"
    microsoft = f"{_verdict(theirs_apply, policies)} (applying: {', '.join(_named(theirs_apply, policies)) or 'none'})"
    return Disagreement(scenario, ours, microsoft, tuple(_named(differ, policies)))


def check(
    rows: Sequence[tuple[str, Any]],
    policy_set: PolicySet,
    policies: Sequence[Mapping[str, Any]],
    ask: Ask,
    unavailable: type[Exception],
) -> WhatIfResult:
    """Ask What If about each (scenario name, sign-in) it can express; `unavailable` errors stop asking."""
    by_id = {str(p.get("id", "")).lower(): p for p in policies}
    skipped: list[str] = []
    disagreements: list[Disagreement] = []
    asked = 0
    for name, sign_in in rows:
        why_not = askable(sign_in)
        if why_not:
            skipped.append(f"'{name}': {why_not}")
            continue
        sign_in = as_asked(sign_in)
        try:
            answer = ask(request_body(sign_in))
        except unavailable as error:
            return WhatIfResult(asked, tuple(skipped), tuple(disagreements), f"What If is not available: {error}")
        asked += 1
        found = compare(name, sign_in, policy_set, answer, by_id)
        if found is not None:
            disagreements.append(found)
    return WhatIfResult(asked, tuple(skipped), tuple(disagreements))
