"""The scenario matrix and the verdict, printed for a terminal or for a CI log (docs/assurance.md "CI logs").

On a terminal: a table. Anywhere else (a pipe, a file, a CI log): one block per row, each line whole, so a GUID
is never folded across lines and `grep` finds a row by name or id; the verdict is always the last line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cipp_hardening.scenarios import EXIT_BROKEN, EXIT_CANNOT_PROVE, MatrixResult, MatrixRow, Status

CI_WIDTH: Final = 240  # wide enough for a table row holding several GUIDs side by side
_STYLES: Final = {
    Status.OK: ("✓", "green", "ok"),
    Status.FAIL: ("✗", "red", "FAIL"),
    Status.CANNOT_PROVE: ("✗", "red", "CANNOT PROVE"),
    Status.UNCERTAIN: ("?", "yellow", "uncertain"),
}
VERDICTS: Final = {
    0: "ok",
    2: "error",
    EXIT_BROKEN: "broken",
    4: "missing exclusions",
    EXIT_CANNOT_PROVE: "cannot prove",
}


def make_console(*, stderr: bool = False) -> Console:
    """A terminal console as rich sizes it; elsewhere a wide one that never wraps a line (CI logs)."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=CI_WIDTH, soft_wrap=True)


def matrix_table(result: MatrixResult, title: str) -> Table:
    table = Table(title=title, show_lines=True)
    with_cipp = any(row.cipp is not None for row in result.rows)
    for column in ("", "scenario", "sign-in", "expected", "actual", *(["CIPP"] if with_cipp else []), "responsible"):
        table.add_column(column, overflow="fold")
    for row in result.rows:
        mark, style, _ = _STYLES[row.status]
        table.add_row(
            f"[{style}]{mark}[/]",
            escape(row.name),
            escape(row.sign_in).replace("; ", "\n"),
            row.expected,
            f"[{style}]{escape(row.actual)}[/]",
            *([escape(row.cipp or "")] if with_cipp else []),
            escape("\n".join(row.responsible)),
        )
    return table


def _row_lines(row: MatrixRow) -> list[str]:
    mark, style, label = _STYLES[row.status]
    lines = [
        f"[{style}]{mark} {label}[/] {escape(row.name)}",
        f"    sign-in: {escape(row.sign_in)}",
        f"    expected {row.expected}; actual: {escape(row.actual)}",
    ]
    if row.cipp is not None:
        lines.append(f"    CIPP: {escape(row.cipp)}")
    if row.responsible and row.status is not Status.OK:
        lines.append(f"    responsible: {escape(', '.join(row.responsible))}")
    return lines


def print_matrix(result: MatrixResult, console: Console, title: str) -> None:
    """The matrix (a table on a terminal, whole lines elsewhere) and its one-line summary."""
    if console.is_terminal:
        console.print(matrix_table(result, title))
    else:
        console.print(escape(title), soft_wrap=True)
        for row in result.rows:
            for line in _row_lines(row):
                console.print(line, soft_wrap=True, highlight=False)
    console.print(matrix_summary(result), soft_wrap=True, highlight=False)


def matrix_summary(result: MatrixResult) -> str:
    counted = len(result.failures) + len(result.uncertain) + len(result.unproven)
    summary = f"{len(result.rows)} scenario(s): {len(result.rows) - counted} ok"
    if result.failures:
        summary += f", [red]{len(result.failures)} broken[/]"
    if result.unproven:
        summary += f", [red]{len(result.unproven)} cannot prove[/] (guard rows the evaluator cannot decide"
        summary += f"; accepted: {escape(result.waiver)})" if result.waiver else ")"
    if result.uncertain:
        summary += (
            f", [yellow]{len(result.uncertain)} uncertain[/] (they depend on conditions that cannot be "
            "evaluated offline: flagged, not failed)"
        )
    return summary


def print_findings(console: Console, heading: str, lines: Sequence[str], style: str) -> None:
    """A heading and one whole line per finding (never folded)."""
    if not lines:
        return
    console.print(f"[{style}]{escape(heading)}[/]", soft_wrap=True)
    for line in lines:
        console.print(f"  [{style}]•[/] {escape(line)}", soft_wrap=True, highlight=False)


def verdict_line(exit_code: int, reasons: Sequence[str]) -> str:
    """The last line of a run: what the exit code means and why."""
    style = "green" if exit_code == 0 else "red"
    text = f"verdict: {VERDICTS.get(exit_code, 'failed')} (exit {exit_code})"
    if reasons:
        text += ": " + "; ".join(reasons)
    return f"[{style}]{escape(text)}[/]"


def matrix_reasons(result: MatrixResult) -> list[str]:
    reasons = []
    if result.failures:
        reasons.append(f"{len(result.failures)} broken scenario(s)")
    if result.unproven:
        what = f"{len(result.unproven)} guard row(s) cannot be proven"
        reasons.append(f"{what}, accepted by assumptions.cannotProveOverride" if result.waiver else what)
    return reasons
