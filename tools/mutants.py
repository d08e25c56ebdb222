"""`make mutants`: a small mutation check of the rule modules (docs/mutation.md).

Each mutant changes one operator or constant in one module (``==`` to ``!=``, ``and`` to ``or``, ``not x``
to ``x``, ``True`` to ``False``, ``any`` to ``all``, ``|`` to ``&``, ``n`` to ``n + 1``...). The module's quick
tests then run against it; a failing test (or an import error, or a timeout) kills it, a green run lets it
survive. The report prints killed/total per module and every survivor with its line.

No third-party mutation tool: mutmut and cosmic-ray rewrite the tree on disk or need a session database;
this one keeps the checkout untouched. The parent imports pytest and the third-party libraries once, then
forks one child per mutant; the child forgets the project's modules, serves the mutated source of the one
module through an import hook, and runs pytest in process (about ten times faster than a subprocess each).

    python tools/mutants.py                         # every module of MODULES
    python tools/mutants.py evaluator drift         # some of them
    python tools/mutants.py --list evaluator        # the mutants, without running tests
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib.abc
import importlib.machinery
import importlib.util
import io
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]

# The rule modules and the quick tests that speak for each (no emulator servers: a child is forked per mutant).
MODULES: dict[str, tuple[str, ...]] = {
    "config": (
        "tests/test_config_catalogue.py",
        "tests/test_custom_roles_config.py",
        "tests/test_lockout.py",
        "tests/test_small_ones.py",
        "tests/test_cidr.py",
        "tests/test_cidr_edges.py",
        "tests/test_config_mutants.py",
        "tests/test_config_edges.py",
        "tests/test_break_glass_alerts.py",
        "tests/test_workload_identity.py",
        "tests/test_client_stack.py",
    ),
    "cidr": (
        "tests/test_cidr.py",
        "tests/test_cidr_edges.py",
        "tests/test_custom_roles_config.py",
        "tests/test_cipp_api_rules.py",
    ),
    "exclusion": (
        "tests/test_exclusion_rules.py",
        "tests/test_exclusion_edges.py",
        "tests/test_part_d_safety.py",
        "tests/test_scenarios.py",
    ),
    "cipp_api": (
        "tests/test_cipp_api_rules.py",
        "tests/test_cipp_api_edges.py",
        "tests/test_cipp_api_destroy_guard.py",
        "tests/test_provider_defaults.py",
    ),
    "custom_roles": (
        "tests/test_custom_roles_config.py",
        "tests/test_cipp_custom_roles_provider.py",
        "tests/test_provider_defaults.py",
        "tests/test_custom_roles_mutants.py",
    ),
    "evaluator": (
        "tests/test_evaluator_decisions.py",
        "tests/test_evaluator.py",
        "tests/test_scenarios.py",
        "tests/test_workload_identity.py",
        "tests/test_lockout.py",
    ),
    "drift": ("tests/test_drift.py", "tests/test_drift_edges.py"),
    "scenarios": (
        "tests/test_scenarios.py",
        "tests/test_scenarios_sampling.py",
        "tests/test_scenarios_mutants.py",
        "tests/test_managed_policies.py",
        "tests/test_custom_roles_matrix.py",
        "tests/test_lockout.py",
        "tests/test_workload_identity.py",
    ),
    "directory_facts": ("tests/test_directory_facts.py", "tests/test_scenarios_sampling.py"),
}
PACKAGE = "cipp_hardening"
# Project packages a child forgets before each run, so that every import sees the mutant.
PROJECT_PREFIXES = ("cipp_hardening", "dynamic_providers", "service_clients", "components", "tests", "policy")

_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr,
}
_NAME_SWAPS = {"any": "all", "all": "any", "min": "max", "max": "min"}


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int
    line: int
    description: str


class _Sites(ast.NodeTransformer):
    """Numbers the mutation sites in source order; mutates only site `target` (None: just counts)."""

    def __init__(self, target: int | None = None) -> None:
        self.target = target
        self.sites: list[tuple[int, str]] = []

    def _site(self, node: ast.AST, description: str) -> bool:
        self.sites.append((getattr(node, "lineno", 0), description))
        return len(self.sites) - 1 == self.target

    # Annotations and docstrings are never executed here (from __future__ import annotations): not mutated.
    def visit_arg(self, node: ast.arg) -> ast.AST:
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    # Decorators neither: their arguments are dataclass options (frozen, slots, kw_only), which change no rule.
    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.args = self.visit(node.args)
        node.body = [self.visit(s) for s in _without_docstring(node.body)] or [ast.Pass()]
        return node

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.bases = [self.visit(b) for b in node.bases]
        node.body = [self.visit(s) for s in _without_docstring(node.body)] or [ast.Pass()]
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        for position, op in enumerate(node.ops):
            swap = _COMPARE_SWAPS.get(type(op))
            if swap and self._site(node, f"{_op_text(op)} -> {_op_text(swap())}"):
                node.ops[position] = swap()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        if self._site(node, f"{_op_text(node.op)} -> {_op_text(other)}"):
            node.op = other
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._site(node, "not x -> x"):
            return node.operand
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        swap = _BINOP_SWAPS.get(type(node.op))
        if swap and self._site(node, f"{_op_text(node.op)} -> {_op_text(swap())}"):
            node.op = swap()
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool):
            if self._site(node, f"{value} -> {not value}"):
                return ast.copy_location(ast.Constant(not value), node)
        elif isinstance(value, int) and self._site(node, f"{value} -> {value + 1}"):
            return ast.copy_location(ast.Constant(value + 1), node)
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        swap = _NAME_SWAPS.get(node.id)
        if swap and isinstance(node.ctx, ast.Load) and self._site(node, f"{node.id} -> {swap}"):
            return ast.copy_location(ast.Name(swap, ast.Load()), node)
        return node


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:]
    return body


_OP_TEXT = {
    "Eq": "==",
    "NotEq": "!=",
    "Lt": "<",
    "LtE": "<=",
    "Gt": ">",
    "GtE": ">=",
    "In": "in",
    "NotIn": "not in",
    "Is": "is",
    "IsNot": "is not",
    "And": "and",
    "Or": "or",
    "Add": "+",
    "Sub": "-",
    "Mult": "*",
    "FloorDiv": "//",
    "BitOr": "|",
    "BitAnd": "&",
}


def _op_text(op: ast.AST) -> str:
    return _OP_TEXT.get(type(op).__name__, type(op).__name__)


def module_path(module: str) -> Path:
    return ROOT / PACKAGE / f"{module}.py"


def _tree(module: str) -> ast.Module:
    tree = ast.parse(module_path(module).read_text(encoding="utf-8"))
    tree.body = _without_docstring(tree.body)
    return tree


def mutants_of(module: str) -> list[Mutant]:
    sites = _Sites()
    sites.visit(_tree(module))
    return [Mutant(module, i, line, text) for i, (line, text) in enumerate(sites.sites)]


def mutated_source(mutant: Mutant) -> str:
    tree = _Sites(mutant.index).visit(copy.deepcopy(_tree(mutant.module)))
    return ast.unparse(ast.fix_missing_locations(tree))


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves one module's mutated source; every other import is left to the usual finders."""

    def __init__(self, name: str, path: Path, source: str) -> None:
        self.name, self.path, self.source = name, path, source

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=str(self.path))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        module.__file__ = str(self.path)
        exec(compile(self.source, str(self.path), "exec"), module.__dict__)  # noqa: S102 - the mutant under test


def _run_tests(tests: Sequence[str], finder: _MutantFinder | None) -> int:
    """In a forked child: forget the project's modules, install the mutant, run pytest quietly (the unmutated
    run, `finder` None, speaks: its failure is the one worth reading)."""
    import pytest

    for name in [n for n in sys.modules if n.split(".")[0] in PROJECT_PREFIXES]:
        del sys.modules[name]
    if finder is not None:
        sys.meta_path.insert(0, finder)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        sys.stdout = sys.stderr = io.TextIOWrapper(io.FileIO(devnull, "w", closefd=False))
    args = ["-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    return int(pytest.main(args))


def _spawn(tests: Sequence[str], finder: _MutantFinder | None) -> int:
    """A child, in a process group of its own, that runs the tests (against the mutant) and exits with pytest's code."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setpgid(0, 0)
            code = _run_tests(tests, finder)
        finally:
            os._exit(code)
    return pid


def _outcome(code: int) -> str:
    """'survived' (green), 'killed' (a failure, a collection or import error), 'error' (pytest could not start)."""
    if code == 0:
        return "survived"
    return "error" if code in (4, 5) else "killed"


def _run_once(tests: Sequence[str]) -> tuple[str, float]:
    started = time.monotonic()
    _, status = os.waitpid(_spawn(tests, None), 0)
    return _outcome(os.waitstatus_to_exitcode(status)), time.monotonic() - started


def _preload() -> None:
    """Import pytest and the project's third-party libraries once, in the parent; children inherit them."""
    import importlib

    import pytest  # noqa: F401

    for name in ("cipp_hardening.scenarios", "cipp_hardening.config", "dynamic_providers.cipp_custom_roles"):
        importlib.import_module(name)
    for name in [n for n in sys.modules if n.split(".")[0] in PROJECT_PREFIXES]:
        del sys.modules[name]


@dataclass
class ModuleScore:
    module: str
    total: int = 0
    killed: int = 0
    seconds: float = 0.0
    survivors: tuple[Mutant, ...] = ()
    timeouts: int = 0  # of the killed: by outliving the timeout


def run_module(module: str, jobs: int) -> ModuleScore:
    tests = [t for t in MODULES[module] if (ROOT / t).exists()]
    started = time.monotonic()
    outcome, seconds = _run_once(tests)
    if outcome != "survived":
        raise SystemExit(f"the unmutated tests of {module} do not pass: {' '.join(tests)}")
    timeout = max(60.0, 10 * seconds)  # generous: a loaded machine must not pass for a kill
    mutants = mutants_of(module)
    survivors: list[Mutant] = []
    killed = timeouts = 0
    for done, (outcome, mutant) in enumerate(_parallel(mutants, tests, timeout, jobs), 1):
        if done % 25 == 0:
            print(f"  {module}: {done}/{len(mutants)} mutants tested", file=sys.stderr, flush=True)
        if outcome == "error":
            raise SystemExit(f"pytest could not run for mutant {mutant}")
        if outcome == "survived":
            survivors.append(mutant)
        else:
            killed += 1
            timeouts += outcome == "timeout"
    survivors.sort(key=lambda m: m.index)
    return ModuleScore(module, len(mutants), killed, time.monotonic() - started, tuple(survivors), timeouts)


def _parallel(
    mutants: Sequence[Mutant], tests: Sequence[str], timeout: float, jobs: int
) -> Iterator[tuple[str, Mutant]]:
    """Up to `jobs` children at a time; one that outlives `timeout` is killed, and so is its mutant."""
    pending = list(mutants)
    running: dict[int, tuple[Mutant, float]] = {}
    try:
        yield from _drain(pending, running, tests, timeout, jobs)
    finally:  # interrupted: no child outlives the run
        for pid in running:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _drain(
    pending: list[Mutant], running: dict[int, tuple[Mutant, float]], tests: Sequence[str], timeout: float, jobs: int
) -> Iterator[tuple[str, Mutant]]:
    while pending or running:
        while pending and len(running) < jobs:
            mutant = pending.pop(0)
            finder = _MutantFinder(f"{PACKAGE}.{mutant.module}", module_path(mutant.module), mutated_source(mutant))
            running[_spawn(tests, finder)] = (mutant, time.monotonic() + timeout)
        for pid, (mutant, deadline) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                del running[pid]
                yield _outcome(os.waitstatus_to_exitcode(status)), mutant
            elif time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                del running[pid]
                yield "timeout", mutant
        time.sleep(0.01)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", choices=[[], *MODULES], default=[], metavar="MODULE")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--list", action="store_true", help="list the mutants only")
    args = parser.parse_args(argv)
    modules = args.modules or list(MODULES)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    if args.list:
        for module in modules:
            for mutant in mutants_of(module):
                print(f"{PACKAGE}/{module}.py:{mutant.line}: #{mutant.index} {mutant.description}")
        return 0
    _preload()
    started = time.monotonic()
    scores = []
    for module in modules:
        score = run_module(module, args.jobs)
        scores.append(score)
        line = f"{module:<15} {score.killed:>4}/{score.total:<4} killed  {score.seconds:6.0f} s"
        print(line + (f"  ({score.timeouts} by timeout)" if score.timeouts else ""), flush=True)
        for mutant in score.survivors:
            where = f"{PACKAGE}/{module}.py:{mutant.line}"
            print(f"    survived  {where}: #{mutant.index} {mutant.description}", flush=True)
    killed, total = sum(s.killed for s in scores), sum(s.total for s in scores)
    print(f"{'all':<15} {killed:>4}/{total:<4} killed  {time.monotonic() - started:6.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
