"""Whether this run of the program is offline: one flag, raised by the offline runner alone.

Offline means no engine and no network: `make plan` and every run of `offline.run_program`, and the demo's
run under mocks that declares the dynamic resources (`offline.running_offline`; docs/pulumi.md §1.5).
The program reads the flag with `is_offline()` wherever a live run would read the tenant, CIPP or the
stack's state; it never guesses from the runtime it finds. Only cipp_hardening/offline.py enters
`marked_offline` (tests/test_architecture.py pins it; docs/layout.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class _Flag:
    offline: bool = False


_FLAG = _Flag()


def is_offline() -> bool:
    return _FLAG.offline


@contextlib.contextmanager
def marked_offline() -> Iterator[None]:
    """The flag up for the block, and back to what it was after it (runs do not nest, but tests may)."""
    previous, _FLAG.offline = _FLAG.offline, True
    try:
        yield
    finally:
        _FLAG.offline = previous
