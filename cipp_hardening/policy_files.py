"""Read Conditional Access policy and named-location JSON files as people export them.

Real exports (the public baselines the tests load) come as UTF-8, UTF-8 with a BOM, or UTF-16 with a BOM
(PowerShell's `Out-File`), and hold a single object, a JSON array of objects, or a Graph collection
envelope `{"value": [...]}`. These helpers hide all of that and hand back plain lists of dicts.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

GraphObject = dict[str, Any]

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


class PolicyFileError(ValueError):
    """A file that is not JSON, or whose JSON is not an object / a list of objects."""


def decode_json_bytes(raw: bytes) -> str:
    """Text of a JSON file whatever its byte-order mark (UTF-32/UTF-16/UTF-8, BOM or not)."""
    if raw.startswith(_UTF32_BOMS):
        return raw.decode("utf-32")
    if raw.startswith(_UTF16_BOMS):
        return raw.decode("utf-16")
    if len(raw) >= 2 and (raw[0] == 0) != (raw[1] == 0):
        # JSON text starts with an ASCII character, so one NUL in the first two bytes means BOM-less UTF-16.
        return raw.decode("utf-16-be" if raw[0] == 0 else "utf-16-le")
    return raw.decode("utf-8-sig")


def load_policy_file(path: str | Path) -> list[GraphObject]:
    """Every JSON object in one file: a single object, an array, or a `{"value": [...]}` envelope."""
    path = Path(path)
    try:
        document = json.loads(decode_json_bytes(path.read_bytes()))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyFileError(f"{path}: not a JSON document ({exc})") from exc
    return _objects_of(document, path)


def _objects_of(document: Any, path: Path) -> list[GraphObject]:
    if isinstance(document, Mapping) and isinstance(document.get("value"), list) and "conditions" not in document:
        document = document["value"]
    if isinstance(document, Mapping):
        return [dict(document)]
    if isinstance(document, list) and all(isinstance(item, Mapping) for item in document):
        return [dict(item) for item in document]
    raise PolicyFileError(f"{path}: expected a JSON object or an array of objects")


def is_policy(obj: Mapping[str, Any]) -> bool:
    """A conditionalAccessPolicy: it has `conditions` (named locations never do)."""
    return isinstance(obj.get("conditions"), Mapping) or str(obj.get("@odata.type", "")).endswith(
        "conditionalAccessPolicy"
    )


def is_named_location(obj: Mapping[str, Any]) -> bool:
    """An ipNamedLocation, countryNamedLocation or any other namedLocation subtype."""
    odata_type = str(obj.get("@odata.type", "")).lower()
    if odata_type.endswith("namedlocation"):
        return True
    return not is_policy(obj) and any(key in obj for key in ("ipRanges", "countriesAndRegions"))


def iter_json_files(folder: str | Path) -> Iterator[Path]:
    """`*.json` files under a folder, recursively, in a stable (sorted) order."""
    yield from sorted(path for path in Path(folder).rglob("*.json") if path.is_file())


def load_policy_folder(folder: str | Path) -> list[GraphObject]:
    """All Conditional Access policies in the JSON files under `folder` (named locations are skipped)."""
    return [obj for path in iter_json_files(folder) for obj in load_policy_file(path) if is_policy(obj)]


def load_named_location_folder(folder: str | Path) -> list[GraphObject]:
    """All named locations in the JSON files under `folder` (policies are skipped)."""
    return [obj for path in iter_json_files(folder) for obj in load_policy_file(path) if is_named_location(obj)]
