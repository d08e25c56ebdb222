"""CI helpers for many stacks: the job matrix of the workflows and the PR comment of a plan.

    cipp-hardening fleet-ci matrix [--stacks 'client-*'] [--changed-files FILE] [--always prod]
                                   [--all-on-code-change]
    cipp-hardening fleet-ci plan-comment --plan plan.json

`matrix` prints a GitHub Actions matrix (`{"include": [{"name", "stacks"}]}`) for the stack files that
match, optionally only those whose file changed (the paths listed in FILE, e.g. `git diff --name-only`);
with `--all-on-code-change`, every matching stack when a changed path is code that every stack runs (the
program, components, providers, rules, policy pack, dependencies: deploy.yml).
GitHub caps a matrix at 256 jobs: beyond that, stacks are batched, several per job (space separated).

`plan-comment` renders `make plan JSON=plan.json` as Markdown for a PR comment: the resources, the
warnings and the plan's scenario matrix when the plan carries one.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cipp_hardening.commands.fleet import ROOT, discover_stacks, parse_patterns, select_stacks

GITHUB_MATRIX_LIMIT = 256
MAX_ROWS = 60
MAX_CELL = 80
COMMENT_MARKER = "<!-- cipp-hardening-plan:{stack} -->"


# -- matrix ------------------------------------------------------------------------------------------
def stack_of(path: str) -> str | None:
    """`Pulumi.client-x.yaml` (at the project root) → `client-x`; anything else → None."""
    name = path.strip()
    if "/" in name or not name.startswith("Pulumi.") or not name.endswith(".yaml") or name == "Pulumi.yaml":
        return None
    return name[len("Pulumi.") : -len(".yaml")] or None


# What every stack runs: a change here re-deploys them all (docs, tests, benchmarks and workflows do not).
CODE_PATHS = (
    "__main__.py",
    "Pulumi.yaml",
    "components/",
    "dynamic_providers/",
    "cipp_hardening/",
    "policy/",
    "requirements.txt",
    "pyproject.toml",
)


def code_changed(paths: Iterable[str]) -> bool:
    """Whether any path is code that every stack runs (CODE_PATHS: exact files, or folders ending in /)."""
    for path in (p.strip() for p in paths):
        if any(path == code or (code.endswith("/") and path.startswith(code)) for code in CODE_PATHS):
            return True
    return False


def changed_stacks(paths: Iterable[str], existing: Sequence[str]) -> list[str]:
    """The existing stacks whose stack file is among `paths` (deleted stack files are left out)."""
    touched = {stack for p in paths if (stack := stack_of(p))}
    return [s for s in existing if s in touched]


def batches(stacks: Sequence[str], max_jobs: int = GITHUB_MATRIX_LIMIT) -> list[list[str]]:
    """One stack per job up to `max_jobs`; beyond, contiguous batches of ceil(N / max_jobs) stacks (at most
    `max_jobs` of them, e.g. 257 stacks → 129 jobs of 2 and 1; BENCHMARKS.md §7)."""
    if max_jobs < 1:
        raise ValueError("max_jobs must be at least 1")
    if len(stacks) <= max_jobs:
        return [[s] for s in stacks]
    size = math.ceil(len(stacks) / max_jobs)
    return [list(stacks[i : i + size]) for i in range(0, len(stacks), size)]


def matrix(stacks: Sequence[str], max_jobs: int = GITHUB_MATRIX_LIMIT) -> dict[str, list[dict[str, str]]]:
    groups = batches(stacks, max_jobs)
    include = []
    for number, group in enumerate(groups, start=1):
        name = group[0] if len(group) == 1 else f"batch {number:03d} ({group[0]} … {group[-1]})"
        include.append({"name": name, "stacks": " ".join(group)})
    return {"include": include}


def matrix_stacks(
    project_dir: Path,
    patterns: Sequence[str],
    changed_files: Iterable[str] | None,
    always: Sequence[str],
    all_on_code_change: bool = False,
) -> list[str]:
    existing = discover_stacks(project_dir)
    selected = select_stacks(existing, patterns)
    if changed_files is not None:
        paths = list(changed_files)
        if not (all_on_code_change and code_changed(paths)):
            selected = changed_stacks(paths, selected)
    wanted = set(always) | set(selected)  # once: rebuilt per stack, 5,000 stacks took 8 s (BENCHMARKS.md §7)
    return [s for s in existing if s in wanted]


# -- plan comment ------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        text = ", ".join(_cell(v) for v in value)
    elif isinstance(value, Mapping):
        text = json.dumps(value, sort_keys=True)
    else:
        text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"\n…and {len(rows) - MAX_ROWS} more rows (see the job's plan.json artifact).")
    return "\n".join(lines)


def _table_from_records(records: Sequence[Mapping[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for record in records for key in record))
    return markdown_table(columns, [[record.get(c) for c in columns] for record in records])


def _scenario_matrix(value: Any) -> str | None:
    """`make plan`'s matrix (cipp_hardening/scenarios.py MatrixResult.to_json): verdict line + one row a scenario."""
    rows = value.get("rows") if isinstance(value, Mapping) else None
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) and {"expected", "actual"} <= set(r) for r in rows):
        return None
    verdict = "✅ every invariant holds" if value.get("ok") else "❌ a broken invariant"
    summary = f"{verdict}: {value.get('failures', 0)} failing, {value.get('uncertain', 0)} uncertain, {len(rows)} rows"
    columns = ["scenario", "expected", "actual", "status", "responsible"]
    body = [[r.get("name"), r.get("expected"), r.get("actual"), r.get("status"), r.get("responsible")] for r in rows]
    return summary + "\n\n" + markdown_table(columns, body)


def render_matrix(value: Any) -> str:
    """The plan's scenario matrix in whichever of the likely shapes it comes; raw JSON otherwise."""
    known = _scenario_matrix(value)
    if known is not None:
        return known
    if isinstance(value, Mapping) and isinstance(value.get("columns"), list) and isinstance(value.get("rows"), list):
        rows = [r if isinstance(r, list | tuple) else [r.get(c) for c in value["columns"]] for r in value["rows"]]
        return markdown_table(value["columns"], rows)
    if isinstance(value, Mapping):
        for key in ("rows", "scenarios", "results", "cells"):
            if isinstance(value.get(key), list):
                return render_matrix(value[key])
        if value and all(isinstance(v, Mapping) for v in value.values()):
            columns = list(dict.fromkeys(k for v in value.values() for k in v))
            return markdown_table(
                ["scenario", *columns], [[name, *(v.get(c) for c in columns)] for name, v in value.items()]
            )
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return _table_from_records(value)
    return "```json\n" + json.dumps(value, indent=2, sort_keys=True)[:20000] + "\n```"


def plan_comment(plan: Mapping[str, Any], stack: str | None = None) -> str:
    stack = stack or str(plan.get("stack", "?"))
    resources = [r for r in plan.get("resources") or [] if isinstance(r, Mapping)]
    types = Counter(str(r.get("type", "?")).split(":")[-1] for r in resources if r.get("custom", True))
    parts = [COMMENT_MARKER.format(stack=stack), f"### Offline plan of stack `{stack}`", ""]
    parts.append(", ".join(f"{n} × {t}" for t, n in sorted(types.items())) or "no resources")
    warnings = [str(w) for w in plan.get("warnings") or []]
    if warnings:
        parts += ["", "**Warnings**", "", *(f"- {' '.join(w.split())[:400]}" for w in warnings)]
    planned = (plan.get("outputs") or {}).get("exclusionPlan")
    if isinstance(planned, list) and planned:
        parts += ["", "**Part D: what apply will do to each client policy**", "", render_matrix(planned)]
    parts += ["", "**Scenario matrix**", ""]
    if plan.get("matrix") is None:
        parts.append("_This plan carries no scenario matrix._")
    else:
        parts.append(render_matrix(plan["matrix"]))
    return "\n".join(parts) + "\n"


# -- command line ------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cipp-hardening fleet-ci",
        description=(__doc__ or "").splitlines()[0],
        epilog="exit codes:\n  0  the matrix or the comment was printed\n  2  bad options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("matrix", help="GitHub Actions matrix of stacks (JSON on stdout)")
    m.add_argument("--stacks", default="client-*", help="shell patterns (default client-*)")
    m.add_argument("--changed-files", type=Path, help="only stacks whose file is listed here (one path a line)")
    m.add_argument("--always", action="append", default=[], help="a stack to include regardless (repeatable)")
    m.add_argument("--all-on-code-change", action="store_true", help="every stack when a CODE_PATHS file changed")
    m.add_argument("--max-jobs", type=int, default=GITHUB_MATRIX_LIMIT)
    m.add_argument("--project-dir", type=Path, default=ROOT)
    c = sub.add_parser("plan-comment", help="Markdown PR comment from a plan JSON")
    c.add_argument("--plan", type=Path, required=True)
    c.add_argument("--stack")
    args = parser.parse_args(argv)
    if args.command == "matrix":
        changed = args.changed_files.read_text(encoding="utf-8").splitlines() if args.changed_files else None
        stacks = matrix_stacks(
            args.project_dir, parse_patterns(args.stacks), changed, args.always, args.all_on_code_change
        )
        print(json.dumps(matrix(stacks, args.max_jobs), separators=(",", ":")))
        return 0
    sys.stdout.write(plan_comment(json.loads(args.plan.read_text(encoding="utf-8")), args.stack))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
