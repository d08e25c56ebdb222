"""The duplicate check, the adopt key, drift and adopt's matching (cipp_hardening/adoption.py, docs/adopt.md)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cipp_hardening import adoption, tenant_check
from cipp_hardening.adoption import Tenant
from cipp_hardening.commands import adopt as adopt_command
from cipp_hardening.commands.adopt import adopted_stack_text, stack_config
from cipp_hardening.config import ConfigError, MspStack, parse_stack_config
from tests.helpers import ROOT, msp_raw, run_main

LOCATION_ID = "11111111-1111-1111-1111-111111111111"
PART_A_ID = "22222222-2222-2222-2222-222222222222"
PART_B_ID = "33333333-3333-3333-3333-333333333333"
OTHER_ID = "44444444-4444-4444-4444-444444444444"
NAMES = {"location": "trusted-location-named-location", "a": "technician-access-policy", "b": "service-account-policy"}


def config(**changes: Any) -> MspStack:
    raw = msp_raw()
    raw.update(changes)
    parsed = parse_stack_config(raw)
    assert isinstance(parsed, MspStack)
    return parsed


def declared_tenant(stack: MspStack) -> Tenant:
    """The three objects exactly as the stack declares them."""
    ranges = [{"cidrAddress": c} for c in stack.trusted_location.cidrs]
    location = {"id": LOCATION_ID, "displayName": stack.trusted_location.display_name, "isTrusted": True}
    access, account = stack.technician_access, stack.service_account
    part_a = {
        "id": PART_A_ID,
        "displayName": access.display_name,
        "state": access.state,
        "conditions": {
            "users": {
                "includeGroups": list(access.include_group_ids),
                "excludeUsers": [*access.break_glass_user_ids, account.user_id],
            },
            "locations": {"includeLocations": ["All"], "excludeLocations": [LOCATION_ID]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }
    part_b = {
        "id": PART_B_ID,
        "displayName": account.display_name,
        "state": account.state,
        "conditions": {"users": {"includeUsers": [account.user_id], "excludeUsers": list(access.break_glass_user_ids)}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        "sessionControls": {"signInFrequency": {"frequencyInterval": "everyTime", "isEnabled": True}},
    }
    return Tenant([{**location, "ipRanges": ranges}], [part_a, part_b])


MANAGED = {NAMES["location"]: LOCATION_ID, NAMES["a"]: PART_A_ID, NAMES["b"]: PART_B_ID}


def test_an_existing_object_the_stack_does_not_manage_refuses_the_run_naming_it_and_the_command() -> None:
    stack = config()
    decision = adoption.decide("prod", adoption.declared_objects(stack), declared_tenant(stack), {}, {})
    assert len(decision.refusals) == 3
    for object_id, refusal in zip((LOCATION_ID, PART_A_ID, PART_B_ID), decision.refusals, strict=True):
        assert object_id in refusal
        assert "cipp-hardening adopt --stack prod" in refusal
    assert decision.imports == {}


def test_objects_the_state_manages_pass_and_a_same_named_copy_beside_them_is_a_warning() -> None:
    stack = config()
    tenant = declared_tenant(stack)
    assert adoption.decide("prod", adoption.declared_objects(stack), tenant, MANAGED, {}) == adoption.Decision()
    copy_of_b = {**tenant.policies[1], "id": OTHER_ID}
    decision = adoption.decide(
        "prod", adoption.declared_objects(stack), Tenant(tenant.locations, [*tenant.policies, copy_of_b]), MANAGED, {}
    )
    assert decision.refusals == []
    [warning] = decision.warnings
    assert OTHER_ID in warning


def test_the_adopt_key_becomes_upstreams_import_id() -> None:
    stack = config()
    adopted = {"trustedLocation": LOCATION_ID, "technicianAccess": PART_A_ID, "serviceAccount": PART_B_ID}
    decision = adoption.decide("prod", adoption.declared_objects(stack), declared_tenant(stack), {}, adopted)
    assert decision.refusals == []
    assert decision.imports == {
        NAMES["location"]: f"/identity/conditionalAccess/namedLocations/{LOCATION_ID}",
        NAMES["a"]: f"/identity/conditionalAccess/policies/{PART_A_ID}",
        NAMES["b"]: f"/identity/conditionalAccess/policies/{PART_B_ID}",
    }
    # Already imported: the same id again (the engine then imports nothing).
    again = adoption.decide("prod", adoption.declared_objects(stack), declared_tenant(stack), MANAGED, adopted)
    assert (again.refusals, again.imports) == ([], decision.imports)


def test_an_adopt_id_that_would_replace_a_managed_object_or_is_gone_is_refused() -> None:
    stack = config()
    tenant = declared_tenant(stack)
    other = Tenant(tenant.locations, [*tenant.policies, {**tenant.policies[1], "id": OTHER_ID}])
    decision = adoption.decide("prod", adoption.declared_objects(stack), other, MANAGED, {"serviceAccount": OTHER_ID})
    [refusal] = decision.refusals
    assert "would replace (delete)" in refusal
    assert PART_B_ID in refusal
    gone = adoption.decide("prod", adoption.declared_objects(stack), tenant, {}, {"serviceAccount": OTHER_ID})
    assert any("holds no Conditional Access policy" in r and OTHER_ID in r for r in gone.refusals)
    assert NAMES["b"] not in gone.imports


def test_a_managed_object_deleted_in_the_portal_no_longer_covers_a_hand_made_one_of_its_name() -> None:
    # A refreshing run drops the deleted one from the state and would create Part B beside the hand-made copy.
    stack = config()
    tenant = declared_tenant(stack)
    hand_made_b = {**tenant.policies[1], "id": OTHER_ID}
    after = Tenant(tenant.locations, [tenant.policies[0], hand_made_b])
    decision = adoption.decide("prod", adoption.declared_objects(stack), after, MANAGED, {})
    [refusal] = decision.refusals
    assert OTHER_ID in refusal
    assert "cipp-hardening adopt" in refusal
    # Adopting the hand-made one is allowed: the managed one is gone, nothing is deleted by the import.
    adopted = adoption.decide("prod", adoption.declared_objects(stack), after, MANAGED, {"serviceAccount": OTHER_ID})
    assert adopted.refusals == []
    assert adopted.imports == {NAMES["b"]: f"/identity/conditionalAccess/policies/{OTHER_ID}"}


def test_workload_identity_objects_are_checked_too_and_are_not_adoptable() -> None:
    stack = config()
    cipp = msp_raw()["cippApi"]
    cipp["workloadIdentityPolicies"] = {"state": "reportOnly"}
    with_workload = config(cippApi=cipp)
    declared = adoption.declared_objects(with_workload)
    workload = [d for d in declared if d.key.startswith("cippApi.")]
    assert workload, "Part C's locations and policies are declared"
    tenant = declared_tenant(stack)
    taken = {"id": OTHER_ID, "displayName": workload[0].display_name}
    decision = adoption.decide("prod", declared, Tenant([*tenant.locations, taken], tenant.policies), MANAGED, {})
    [refusal] = decision.refusals
    assert OTHER_ID in refusal
    assert "not adoptable" in refusal


def test_drift_names_a_deletion_a_state_change_an_exclusion_removed_and_a_disabled_location() -> None:
    stack = config()
    tenant = declared_tenant(stack)
    owned = {"trustedLocation": LOCATION_ID, "technicianAccess": PART_A_ID, "serviceAccount": PART_B_ID}
    assert adoption.drift(stack, tenant, owned) == []
    location: dict[str, Any] = copy.deepcopy(dict(tenant.locations[0]))
    part_a: dict[str, Any] = copy.deepcopy(dict(tenant.policies[0]))
    location["isTrusted"] = False
    part_a["state"] = "enabled"
    part_a["conditions"]["users"]["excludeUsers"] = part_a["conditions"]["users"]["excludeUsers"][1:]
    found = adoption.drift(stack, Tenant([location], [part_a]), owned)
    lines = [d.line for d in found]
    assert len(lines) == 3
    assert "not marked trusted" in lines[0]
    assert "state is 'enabled'" in lines[1]
    assert "excludeUsers" in lines[1]
    assert "was deleted" in lines[2]
    assert not any(d.in_state for d in found), "no state outputs given: nothing says the engine sees it"


def test_a_part_b_without_the_break_glass_exclusions_differs_from_the_stack() -> None:
    stack = config()
    tenant = declared_tenant(stack)
    part_b: dict[str, Any] = copy.deepcopy(dict(tenant.policies[1]))
    del part_b["conditions"]["users"]["excludeUsers"]  # as the article made it by hand, before docs/scanners.md
    owned = {"serviceAccount": PART_B_ID}
    [found] = adoption.drift(stack, Tenant([], [tenant.policies[0], part_b]), owned)
    assert "excludeUsers is [], declared" in found.line
    assert all(user in found.line for user in stack.technician_access.break_glass_user_ids)


def test_drift_knows_whether_the_state_shows_it_as_after_a_refresh() -> None:
    stack = config()
    tenant = declared_tenant(stack)
    part_a: dict[str, Any] = copy.deepcopy(dict(tenant.policies[0]))
    part_a["state"] = "enabled"
    users = part_a["conditions"]["users"]
    # pulumi-azuread's outputs before and after `--refresh` read the portal's change.
    before = {
        "state": stack.technician_access.state,
        "conditions": {
            "users": {"includedGroups": users["includeGroups"], "excludedUsers": users["excludeUsers"]},
            "locations": {"includedLocations": ["All"], "excludedLocations": [LOCATION_ID]},
        },
    }
    after = {**before, "state": "enabled"}
    owned = {"technicianAccess": PART_A_ID}
    live = Tenant(tenant.locations, [part_a])
    [stale] = adoption.drift(stack, live, owned, {"technicianAccess": before})
    [seen] = adoption.drift(stack, live, owned, {"technicianAccess": after})
    assert (stale.in_state, seen.in_state) == (False, True)
    location = {"ip": {"ipRanges": list(stack.trusted_location.cidrs), "trusted": True}}
    assert adoption.state_shows("namedLocation", location, tenant.locations[0])
    assert not adoption.state_shows("namedLocation", location, {**tenant.locations[0], "isTrusted": False})


def test_adopt_matches_by_name_then_by_content_and_blocks_what_import_cannot_reconcile() -> None:
    stack = config()
    tenant = declared_tenant(stack)
    assert [(m.object_id, m.how) for m in adoption.match(stack, tenant)] == [
        (LOCATION_ID, "display name"),
        (PART_A_ID, "display name"),
        (PART_B_ID, "display name"),
    ]
    renamed = Tenant(
        [{**tenant.locations[0], "displayName": "Office"}],
        [{**p, "displayName": f"hand-made {i}"} for i, p in enumerate(tenant.policies)],
    )
    assert [(m.object_id, m.how) for m in adoption.match(stack, renamed)] == [
        (LOCATION_ID, "content"),
        (PART_A_ID, "content"),
        (PART_B_ID, "content"),
    ]
    twice = Tenant(tenant.locations, [*renamed.policies, {**renamed.policies[1], "id": OTHER_ID}])
    blocked = adoption.match(stack, twice)[2]
    assert blocked.blocking is not None
    assert OTHER_ID in blocked.blocking
    country = {**tenant.locations[0], "@odata.type": "#microsoft.graph.countryNamedLocation"}
    assert "countryNamedLocation" in str(adoption.match(stack, Tenant([country], tenant.policies))[0].blocking)


def test_the_adopt_key_is_written_keeping_comments_and_read_back_by_the_config() -> None:
    text = (ROOT / "Pulumi.example.yaml").read_text(encoding="utf-8")
    ids = {"trustedLocation": LOCATION_ID, "serviceAccount": PART_B_ID}
    written = adopted_stack_text(text, ids)
    assert written.startswith(text.split("config:")[0])
    assert "# Part C: the CIPP-API clients' allowed IP ranges" in written
    assert stack_config(written, "Pulumi.prod.yaml").adopt == ids
    with pytest.raises(ConfigError, match=r"adopt\.serviceAccount"):
        config(adopt={"serviceAccount": "not-a-guid"})
    with pytest.raises(ConfigError, match=r"adopt\.partD"):
        config(adopt={"partD": LOCATION_ID})


def test_the_state_export_gives_the_managed_ids_by_resource_name() -> None:
    exported = {
        "deployment": {
            "resources": [
                {
                    "urn": "urn:pulumi:prod::cipp-hardening::cipp:hardening:TrustedLocation$"
                    "azuread:index/namedLocation:NamedLocation::trusted-location-named-location",
                    "type": "azuread:index/namedLocation:NamedLocation",
                    "id": f"/identity/conditionalAccess/namedLocations/{LOCATION_ID.upper()}",
                },
                {"urn": "urn:pulumi:prod::cipp-hardening::pulumi:pulumi:Stack::x", "type": "pulumi:pulumi:Stack"},
                {
                    "urn": "urn:pulumi:prod::p::azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy::old",
                    "type": "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy",
                    "id": f"/identity/conditionalAccess/policies/{OTHER_ID}",
                    "delete": True,  # pending deletion: not managed any more
                },
            ]
        }
    }
    assert tenant_check.managed_ids(exported) == {NAMES["location"]: LOCATION_ID}


def test_the_offline_plan_says_it_skips_the_check() -> None:
    run = run_main(msp_raw())
    assert tenant_check.OFFLINE_LINE in run.messages("warning")


def _adopt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tenant: Tenant, *argv: str) -> tuple[int, Path]:
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text((ROOT / "Pulumi.example.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(adopt_command, "read_tenant", lambda stack: (stack, tenant))
    code = adopt_command.main(["--stack", "prod", "--stack-file", str(stack_file), *argv])
    return code, stack_file


def test_adopt_refuses_an_ambiguous_match_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = declared_tenant(config())
    twice = Tenant([*tenant.locations, {**tenant.locations[0], "id": OTHER_ID}], tenant.policies)
    code, stack_file = _adopt_in(tmp_path, monkeypatch, twice)
    assert code == 1
    assert stack_file.read_text(encoding="utf-8") == (ROOT / "Pulumi.example.yaml").read_text(encoding="utf-8")


def test_adopt_writes_the_key_or_an_import_file_and_a_dry_run_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = declared_tenant(config())
    original = (ROOT / "Pulumi.example.yaml").read_text(encoding="utf-8")
    code, stack_file = _adopt_in(tmp_path, monkeypatch, tenant, "--dry-run")
    assert (code, stack_file.read_text(encoding="utf-8")) == (0, original)
    target = tmp_path / "import.json"
    code, stack_file = _adopt_in(tmp_path, monkeypatch, tenant, "--import-file", str(target))
    assert (code, stack_file.read_text(encoding="utf-8")) == (0, original)
    resources = json.loads(target.read_text(encoding="utf-8"))["resources"]
    assert {"type": "cipp:hardening:TrustedLocation", "name": "trusted-location", "component": True} in resources
    assert {
        "type": "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy",
        "name": NAMES["b"],
        "id": f"/identity/conditionalAccess/policies/{PART_B_ID}",
        "parent": "service-account",
    } in resources
    code, stack_file = _adopt_in(tmp_path, monkeypatch, tenant)
    assert code == 0
    assert stack_config(stack_file.read_text(encoding="utf-8"), "x").adopt == {
        "trustedLocation": LOCATION_ID,
        "technicianAccess": PART_A_ID,
        "serviceAccount": PART_B_ID,
    }


def test_adopt_of_a_client_stack_is_an_error(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.client-contoso.yaml"
    stack_file.write_text((ROOT / "Pulumi.client-contoso.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert adopt_command.main(["--stack", "client-contoso", "--stack-file", str(stack_file)]) == 2
