"""Reading the YAML files the project takes (stack files, scenario files) with libyaml when it is there.

PyYAML's pure-Python loader takes about 20 ms for a stack file, a tenth of the offline plan's run;
its C loader (CSafeLoader, in the PyPI wheels) parses the same document to the same values.

A syntax error comes back as YamlFileError naming the file, line and column (`Pulumi.prod.yaml:12:5:
...`), never PyYAML's traceback about `<unicode string>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlFileError(yaml.YAMLError, ValueError):
    """A YAML document that does not parse; the message is `file:line:column: what is wrong`.

    A yaml.YAMLError (callers that catch PyYAML's errors keep working) and a ValueError.
    """

    def __init__(self, source: str, line: int | None, column: int | None, problem: str) -> None:
        self.source, self.line, self.column, self.problem = source, line, column, problem
        where = source if line is None else f"{source}:{line}:{column}"
        super().__init__(f"{where}: {problem}")


def _error_of(exc: yaml.YAMLError, source: str) -> YamlFileError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = ": ".join(part for part in (getattr(exc, "context", None), getattr(exc, "problem", None)) if part)
    problem = problem or str(exc).splitlines()[0]
    if mark is None:
        return YamlFileError(source, None, None, f"not valid YAML: {problem}")
    # PyYAML counts lines and columns from 0; editors and compilers from 1.
    return YamlFileError(source, mark.line + 1, mark.column + 1, f"not valid YAML: {problem}")


def load_yaml(text: str, source: str = "<text>") -> Any:
    """`yaml.safe_load`, faster; raises YamlFileError naming `source`, line and column."""
    try:
        return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader, the C one when available
    except YamlFileError:
        raise
    except yaml.YAMLError as exc:
        raise _error_of(exc, source) from None


def read_yaml(path: Path) -> Any:
    """The document in `path`; OSError when it cannot be read, YamlFileError when it is not YAML."""
    return load_yaml(path.read_text(encoding="utf-8"), str(path))
