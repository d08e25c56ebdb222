"""What Maester and CISA's ScubaGear need to know about the policies this project writes (docs/scanners.md).

Pure functions over Graph v1.0 policy JSON and the parsed stack config; the command
(cipp_hardening/commands/scanners.py) reads the inputs and writes the files.

- MSP stack: Maester's `GlobalSettings.EmergencyAccessAccounts` (entries `{Id, Type}`, read by Maester's
  Test-MtCaEmergencyAccessExists, MT.1005) and a ScubaGear `Aad.<policy>.CapExclusions` fragment naming the
  break-glass users and groups for every baseline policy that takes CapExclusions.
- Client stack: Part D adds an exclusion to the client's policies. ScubaGear then stops counting a policy
  for an MS.AAD control unless that exclusion is allow-listed (AAD.rego's *ExclusionsFullyExempt), and
  Maester's MT.1016 (Test-MtCaMfaForGuest) stops counting a guest-MFA policy with any guest exclusion, with
  no allow-list at all. `control_matches` restates AADConfig.rego's conditions per control, exclusions
  aside, so the report can say which control each touched policy counts for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cipp_hardening.config import ClientStack, MspStack
from cipp_hardening.exclusion import SERVICE_PROVIDER, exclude_cipp, full_users, select_policies

# ScubaConfigSchema.json schemaMetadata.policyExclusionMappings: the policies that take CapExclusions.
CAP_EXCLUSION_POLICIES = (
    "MS.AAD.1.1v1",
    "MS.AAD.2.1v1",
    "MS.AAD.2.3v1",
    "MS.AAD.3.1v1",
    "MS.AAD.3.2v2",
    "MS.AAD.3.6v1",
    "MS.AAD.3.7v1",
    "MS.AAD.3.8v1",
    "MS.AAD.3.9v1",
)
# AAD.rego IsPhishingResistantMFA: the acceptable authentication-strength combinations.
PHISHING_RESISTANT = frozenset({"windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor"})
# AAD.rego IsGeneralMFA: combinations that are MFA.
MFA_COMBINATIONS = PHISHING_RESISTANT | {
    "deviceBasedPush",
    "temporaryAccessPassOneTime",
    "temporaryAccessPassMultiUse",
    "password,microsoftAuthenticatorPush",
    "password,softwareOath",
    "password,hardwareOath",
    "password,sms",
    "password,voice",
    "federatedMultiFactor",
    "microsoftAuthenticatorPush,federatedSingleFactor",
    "softwareOath,federatedSingleFactor",
    "hardwareOath,federatedSingleFactor",
    "sms,federatedSingleFactor",
    "voice,federatedSingleFactor",
}
# Test-MtCaMfaForGuest's $GuestTypes: a policy naming all of them "applies to guests".
MAESTER_GUEST_TYPES = frozenset(
    {"internalGuest", "b2bCollaborationGuest", "b2bCollaborationMember", "b2bDirectConnectUser"}
    | {"otherExternalUser", SERVICE_PROVIDER}
)


# --- MSP stack ----------------------------------------------------------------------------------------


def maester_config(config: MspStack) -> dict[str, Any]:
    """maester-config.json: the template's shape (powershell/assets/templates/maester-config.json)."""
    access = config.technician_access
    accounts = [{"Id": user, "Type": "user"} for user in access.break_glass_user_ids]
    accounts += [{"Id": group, "Type": "group"} for group in access.break_glass_group_ids]
    return {"GlobalSettings": {"EmergencyAccessAccounts": accounts}, "TestSettings": []}


def msp_scubagear(config: MspStack) -> dict[str, Any]:
    """The `Aad` fragment allow-listing the break-glass accounts in every CapExclusions policy."""
    access = config.technician_access
    lists = {"Users": access.break_glass_user_ids, "Groups": access.break_glass_group_ids}
    # Fresh lists per control: a shared list would be written as a YAML anchor and aliases.
    return {
        "Aad": {
            policy: {"CapExclusions": {key: list(ids) for key, ids in lists.items() if ids}}
            for policy in CAP_EXCLUSION_POLICIES
        }
    }


# --- what ScubaGear's AADConfig.rego asks of a policy, exclusions aside ----------------------------------


def _get(policy: Mapping[str, Any], *path: str) -> Any:
    value: Any = policy
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _controls(policy: Mapping[str, Any]) -> list[str]:
    return _list(_get(policy, "grantControls", "builtInControls"))


def _strengths(policy: Mapping[str, Any]) -> set[str]:
    return set(_list(_get(policy, "grantControls", "authenticationStrength", "allowedCombinations")))


def phishing_resistant(policy: Mapping[str, Any]) -> bool:
    strengths = _strengths(policy)
    return bool(strengths) and strengths <= PHISHING_RESISTANT


def general_mfa(policy: Mapping[str, Any]) -> bool:
    if "mfa" in _controls(policy):
        return True
    strengths = _strengths(policy)
    return bool(strengths & MFA_COMBINATIONS) and strengths <= MFA_COMBINATIONS and bool(strengths - PHISHING_RESISTANT)


def _common(policy: Mapping[str, Any], all_apps: bool = True) -> bool:
    """AADConfig.rego's "common checks": All users (All apps), no excluded roles, enabled."""
    users = full_users(_get(policy, "conditions", "users"))
    apps = _list(_get(policy, "conditions", "applications", "includeApplications"))
    return (
        "All" in users["includeUsers"]
        and (not all_apps or "All" in apps)
        and not users["excludeRoles"]
        and policy.get("state") == "enabled"
    )


def _device_grant(policy: Mapping[str, Any]) -> bool:
    controls = _controls(policy)
    return (
        set(controls) == {"compliantDevice", "domainJoinedDevice"} and _get(policy, "grantControls", "operator") == "OR"
    )


def _privileged_roles(policy: Mapping[str, Any]) -> bool:
    """MS.AAD.3.6v1 wants every privileged role of the tenant included; offline, any included role is a maybe."""
    users = full_users(_get(policy, "conditions", "users"))
    apps = _list(_get(policy, "conditions", "applications", "includeApplications"))
    enabled = policy.get("state") == "enabled" and not users["excludeRoles"]
    return enabled and "All" in apps and bool(users["includeRoles"]) and phishing_resistant(policy)


def _registers_security_info(policy: Mapping[str, Any]) -> bool:
    actions = _list(_get(policy, "conditions", "applications", "includeUserActions"))
    controls = _controls(policy)
    return (
        _common(policy, all_apps=False)
        and "urn:user:registersecurityinfo" in actions
        and ("compliantDevice" in controls or "domainJoinedDevice" in controls)
    )


def _blocks_device_code(policy: Mapping[str, Any]) -> bool:
    methods = _get(policy, "conditions", "authenticationFlows", "transferMethods")
    return _common(policy) and methods == "deviceCodeFlow" and "block" in _controls(policy)


CONTROLS: dict[str, tuple[str, Callable[[Mapping[str, Any]], bool]]] = {
    "MS.AAD.1.1v1": (
        "blocks legacy authentication",
        lambda p: (
            _common(p)
            and {"other", "exchangeActiveSync"} <= set(_list(_get(p, "conditions", "clientAppTypes")))
            and "block" in _controls(p)
        ),
    ),
    "MS.AAD.2.1v1": (
        "blocks high user risk",
        lambda p: _common(p) and "high" in _list(_get(p, "conditions", "userRiskLevels")) and "block" in _controls(p),
    ),
    "MS.AAD.2.3v1": (
        "blocks high sign-in risk",
        lambda p: _common(p) and "high" in _list(_get(p, "conditions", "signInRiskLevels")) and "block" in _controls(p),
    ),
    "MS.AAD.3.1v1": ("requires phishing-resistant MFA", lambda p: _common(p) and phishing_resistant(p)),
    "MS.AAD.3.2v2": ("requires MFA", lambda p: _common(p) and general_mfa(p)),
    "MS.AAD.3.6v1": ("requires phishing-resistant MFA for privileged roles", _privileged_roles),
    "MS.AAD.3.7v1": ("requires a managed device", lambda p: _common(p) and _device_grant(p)),
    "MS.AAD.3.8v1": ("requires a managed device to register MFA", _registers_security_info),
    "MS.AAD.3.9v1": ("blocks device code flow", _blocks_device_code),
}


def control_matches(policy: Mapping[str, Any]) -> list[str]:
    """The ScubaGear controls the policy counts for once its exclusions are allow-listed."""
    return [control for control, (_, check) in CONTROLS.items() if check(policy)]


def maester_guest_mfa(policy: Mapping[str, Any]) -> bool:
    """Test-MtCaMfaForGuest (MT.1016): enabled, MFA, all apps, no guest exclusion, guests or all users."""
    users = full_users(_get(policy, "conditions", "users"))
    if policy.get("state") != "enabled" or "passwordChange" in _controls(policy):
        return False
    included = _get(users, "includeGuestsOrExternalUsers", "guestOrExternalUserTypes")
    all_guest_types = isinstance(included, str) and set(included.split(",")) >= MAESTER_GUEST_TYPES
    requires_mfa = "mfa" in _controls(policy) or "mfa" in _list(
        _get(policy, "grantControls", "authenticationStrength", "requirementsSatisfied")
    )
    applies = "GuestsOrExternalUsers" in users["includeUsers"] or all_guest_types or "All" in users["includeUsers"]
    all_apps = "All" in _list(_get(policy, "conditions", "applications", "includeApplications"))
    return requires_mfa and all_apps and users["excludeGuestsOrExternalUsers"] is None and applies


# --- client stack ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flip:
    """One client policy whose scanner verdict Part D's exclusion changes."""

    policy_id: str
    display_name: str
    scanner: str  # "ScubaGear MS.AAD.3.2v2" / "Maester MT.1016"
    reason: str
    allow_listed: bool  # the written scubagear.yaml restores the verdict


@dataclass(frozen=True)
class ClientFindings:
    allow_list: dict[str, Any]  # the scubagear.yaml document
    flips: list[Flip]
    carried: list[tuple[str, str, list[str]]]  # (id, name, controls): the exclusion was already there


def _exclusion_text(config: ClientStack) -> tuple[str, dict[str, Any]]:
    tenant = config.client_tenant
    if tenant.access_mode == "direct":
        account = str(tenant.service_account_user_id)
        return f"excludes the CIPP service account {account} (Direct mode)", {"Users": [account]}
    return (
        f"excludes the guest type serviceProvider for the MSP tenant {tenant.msp_tenant_id} (GDAP)",
        {"GuestUserTypes": [SERVICE_PROVIDER]},
    )


def client_findings(config: ClientStack, policies: Sequence[Mapping[str, Any]]) -> ClientFindings:
    """The allow-list and the verdicts Part D changes, over the client's policies as listed now."""
    tenant = config.client_tenant
    what, exclusion = _exclusion_text(config)
    selected, _ = select_policies(policies, tenant.include_states, tenant.skip_policy_ids)
    flips: list[Flip] = []
    carried: list[tuple[str, str, list[str]]] = []
    touched_controls: set[str] = set()
    for policy in selected:
        users = _get(policy, "conditions", "users")
        merge = exclude_cipp(
            users, tenant.access_mode, tenant.msp_tenant_id, tenant.service_account_user_id, tenant.on_conflict
        )
        policy_id, name = str(policy.get("id", "")), str(policy.get("displayName", ""))
        controls = control_matches(policy)
        if merge.status == "already-excluded":
            carried.append((policy_id, name, controls))
            touched_controls.update(controls)
            continue
        if not merge.write:
            continue  # a conflict left as it is: nothing written, no verdict changed
        touched_controls.update(controls)
        after = {**policy, "conditions": {**(policy.get("conditions") or {}), "users": merge.users}}
        flips += [
            Flip(policy_id, name, f"ScubaGear {control}", f"{CONTROLS[control][0]}; Part D {what}", True)
            for control in controls
        ]
        if maester_guest_mfa(policy) and not maester_guest_mfa(after):
            reason = (
                f"requires MFA of guests; Part D {what}, and MT.1016 counts no policy with any guest exclusion "
                "(Maester has no allow-list for it)"
            )
            flips.append(Flip(policy_id, name, "Maester MT.1016", reason, False))
    allow_list = {
        control: {"CapExclusions": {key: list(ids) for key, ids in exclusion.items()}}
        for control in sorted(touched_controls)
    }
    return ClientFindings({"Aad": allow_list}, flips, carried)


def client_report(config: ClientStack, findings: ClientFindings) -> str:
    """scanner-report.md: each client policy whose verdict Part D changes, and why."""
    tenant = config.client_tenant
    what, _ = _exclusion_text(config)
    lines = [
        f"# Scanner verdicts Part D changes in tenant {tenant.tenant_id}",
        "",
        f"Part D {what} in every policy it manages (docs/part-d.md). The scanners read that exclusion as follows",
        "(docs/scanners.md); `scubagear.yaml` beside this file allow-lists it for the ScubaGear controls below.",
        "",
    ]
    if not findings.flips:
        lines.append("No policy's Maester or ScubaGear verdict changes.")
    else:
        lines += [
            "| Policy | Id | Scanner | Why the verdict changes | Restored by scubagear.yaml |",
            "|---|---|---|---|---|",
        ]
        for flip in findings.flips:
            restored = "yes" if flip.allow_listed else "no"
            cells = [_cell(flip.display_name), flip.policy_id, flip.scanner, _cell(flip.reason), restored]
            lines.append("| " + " | ".join(cells) + " |")
    if findings.carried:
        lines += ["", "Already carrying the exclusion before this run (the allow-list covers them too):", ""]
        lines += [
            f"- {_cell(name)} ({pid}): {', '.join(c) or 'no ScubaGear control'}" for pid, name, c in findings.carried
        ]
    if tenant.access_mode == "direct":
        lines += [
            "",
            "Maester MT.1005: without `EmergencyAccessAccounts` in the tenant's maester-config.json, Maester takes the",
            "most-excluded user as the emergency-access account, which Part D may make the CIPP service account.",
        ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
