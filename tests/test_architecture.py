"""The rooms of the code and what may import what (docs/layout.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PRODUCT = ("cipp_hardening", "components", "dynamic_providers", "service_clients")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def offenders(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in files:
        for module in imported_modules(path):
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
