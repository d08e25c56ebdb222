"""Reading the YAML files the project takes (stack files, scenario files) with libyaml when it is there.

PyYAML's pure-Python loader takes about 20 ms for a stack file, a tenth of the offline plan's run;
its C loader (CSafeLoader, in the PyPI wheels) parses the same document to the same values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, faster."""
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader, the C one when available


def read_yaml(path: Path) -> Any:
    return load_yaml(path.read_text(encoding="utf-8"))
