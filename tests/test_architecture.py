"""The rooms of the code and what may import what (docs/layout.md)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.helpers import ROOT

PRODUCT = ("cipp_hardening", "components", "dynamic_providers", "service_clients")


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def offenders(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in files:
        for module in absolute_imports(path):
            if module.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


def test_emulators_never_import_the_product() -> None:
    assert offenders(python_files("emulators"), (*PRODUCT, "tests", "policy")) == []


@pytest.mark.parametrize("folder", [*PRODUCT, "policy"])
def test_the_product_never_imports_its_tests(folder: str) -> None:
    files = [path for path in python_files(folder) if "tests" not in path.relative_to(ROOT).parts]
    assert offenders(files, ("tests", "bench", "tools")) == []


def test_only_the_demo_command_uses_the_emulators() -> None:
    files = [path for path in python_files(*PRODUCT) if path.name != "demo.py"]
    assert offenders(files, ("emulators",)) == []


def test_components_make_no_http_calls_and_providers_know_no_components() -> None:
    assert offenders(python_files("components"), ("requests", "urllib3", "azure")) == []
    assert offenders(python_files("dynamic_providers"), ("components", "emulators")) == []


def test_one_guid_pattern_in_the_product() -> None:
    """config.GUID is the GUID pattern; a second copy could drift (one was lower-case only)."""
    copies = [
        str(path.relative_to(ROOT))
        for path in python_files(*PRODUCT, "policy")
        if "{12}" in path.read_text(encoding="utf-8") and "tests" not in path.relative_to(ROOT).parts
    ]
    assert copies == ["cipp_hardening/config.py"]


def test_the_benchmarks_never_import_the_tests() -> None:
    assert offenders(python_files("bench"), ("tests",)) == []


# -- the layers of the product (docs/layout.md "What may import what") ------------------------------------
# The rules: typed config and pure functions over Graph and CIPP JSON. Scenarios needs the managed-policy labels
# and the directory view, which are as pure as the rest.
RULES = frozenset(
    f"cipp_hardening.{name}"
    for name in (
        "config",
        "cidr",
        "exclusion",
        "cipp_api",
        "custom_roles",
        "evaluator",
        "drift",
        "graph_render",
        "scenarios",
        "managed_policies",
        "directory_facts",
    )
)
CLIENT_LIBRARIES = ("requests", "tenacity", "azure")  # azure-identity (and its azure-core)


def absolute_imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (function-level imports too), `from pkg import mod` as pkg.mod."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def is_stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def product_module(module: str) -> str | None:
    """The product module `module` names (a package's submodule when the import names one), else None."""
    if module.split(".")[0] not in PRODUCT:
        return None
    return module if (ROOT / f"{module.replace('.', '/')}.py").exists() else None


def layer_offenders(files: Iterable[Path], allowed: frozenset[str], libraries: tuple[str, ...] = ()) -> list[str]:
    """Imports outside the standard library, `libraries` and the product modules in `allowed` (by prefix)."""
    found = []
    for path in files:
        for module in sorted(absolute_imports(path)):
            if is_stdlib(module) or module.split(".")[0] in libraries:
                continue
            if module.split(".")[0] in PRODUCT:
                own = product_module(module)
                if own is None or any(own == ok or own.startswith(f"{ok}.") for ok in allowed):
                    continue
            found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


def rule_files() -> list[Path]:
    return [ROOT / f"{module.replace('.', '/')}.py" for module in sorted(RULES)]


def test_the_rules_import_only_the_standard_library_and_each_other() -> None:
    assert layer_offenders(rule_files(), RULES) == []


def test_the_service_clients_import_nothing_of_the_product() -> None:
    files = python_files("service_clients")
    assert layer_offenders(files, frozenset({"service_clients"}), CLIENT_LIBRARIES) == []


def test_the_providers_rest_on_the_rules_and_the_service_clients_only() -> None:
    allowed = RULES | {"service_clients", "dynamic_providers"}
    assert layer_offenders(python_files("dynamic_providers"), allowed, ("pulumi",)) == []


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Each import circle of `graph` once, as the path that closes it (depth-first walk)."""
    found: list[list[str]] = []
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            circle = path[path.index(node) :]
            if not any(set(circle) == set(seen) for seen in found):
                found.append([*circle, node])
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            walk(target, [*path, node])
        done.add(node)

    for start in sorted(graph):
        walk(start, [])
    return found


def command_imports() -> dict[str, set[str]]:
    files = python_files("cipp_hardening/commands")
    commands = {module_name(path) for path in files}
    return {module_name(path): absolute_imports(path) & commands - {module_name(path)} for path in files}


def test_cycles_finds_a_circle_through_a_function_level_import() -> None:
    assert cycles({"plan": {"verify"}, "verify": {"plan"}, "demo": {"plan"}}) == [["plan", "verify", "plan"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_circle_among_the_commands() -> None:
    assert cycles(command_imports()) == []


def test_only_the_offline_runner_raises_the_offline_flag() -> None:
    """run_mode.marked_offline is entered by cipp_hardening/offline.py alone, and no product module guesses
    "offline" from the mock runtime (docs/layout.md)."""
    allowed = {ROOT / "cipp_hardening" / "offline.py", ROOT / "cipp_hardening" / "run_mode.py"}
    files = [p for p in python_files(*PRODUCT, "policy", "bench", "emulators", "tools") if p not in allowed]
    raising = [str(p.relative_to(ROOT)) for p in files if "marked_offline" in p.read_text(encoding="utf-8")]
    guessing = [
        str(p.relative_to(ROOT))
        for p in python_files(*PRODUCT)
        if p not in allowed and {"MockMonitor", "get_monitor"} & _names_used(p)
    ]
    assert (raising, guessing) == ([], [])


def _names_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    return names
