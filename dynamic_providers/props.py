"""Typed args for the dynamic resources, and their props: the plain dict pulumi.dynamic stores in state.

As in Pulumi's own dynamic-provider examples, each resource has an args class (a frozen dataclass here) that
its component builds and its provider reads back. The component builds it from config that
cipp_hardening.config has already validated, so a provider's check() only makes sure the props have the
shape of the class; the rules of config are not run a second time. What the engine hands the provider later
comes from state, possibly written by an older version or edited by hand: `decode` reads it the same way,
fills what a prop added since holds by default, and names the prop that does not fit.

The props' names are the names in state: each class maps its fields to them in `PROPS`, and they never change
(docs/pulumi.md §2.2, §2.2a). Values the engine does not know yet at preview are left alone: the provider host
hands them to check() as `pulumi.output.Unknown` (pulumi/dynamic/__main__.py, Check: deserialize_properties with
keep_unknowns), a program's mocks as the wire sentinel `pulumi.runtime.rpc.UNKNOWN`.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN


class Args(Protocol):
    PROPS: ClassVar[dict[str, str]]  # field name → prop name in state


ArgsT = TypeVar("ArgsT", bound=Args)


def _is_texts(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(entry, str) for entry in value)


def _is_objects(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(entry, dict) for entry in value)


_SHAPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "tuple[str, ...]": (_is_texts, "a list of strings"),
    "dict[str, Any]": (lambda v: isinstance(v, dict), "an object"),
    "pulumi.Input[dict[str, Any]]": (lambda v: isinstance(v, dict), "an object"),  # an output when declared
    "tuple[dict[str, Any], ...]": (_is_objects, "a list of objects"),
}


def _shape(annotation: str) -> tuple[Callable[[Any], bool], str]:
    """What a field's annotation lets through (None aside): one of _SHAPES, or a Literal's values."""
    annotation = annotation.removesuffix(" | None")
    if annotation.startswith("Literal["):
        allowed = ast.literal_eval(f"({annotation.removeprefix('Literal[').removesuffix(']')},)")
        return (lambda v: v in allowed), "one of " + ", ".join(map(str, allowed))
    return _SHAPES[annotation]


def to_props(args: Args) -> dict[str, Any]:
    """The props of `args` under their names in state; a None optional is left out, tuples become lists."""
    props: dict[str, Any] = {}
    for name, prop in args.PROPS.items():
        value = getattr(args, name)
        if value is not None:
            props[prop] = list(value) if isinstance(value, tuple) else value
    return props


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown) or (isinstance(value, str) and value == UNKNOWN)


def problems(cls: type[Args], props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(prop, reason) for each prop of `props` that does not fit `cls`; [] when they all do. Unknowns pass."""
    found: list[tuple[str, str]] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        prop = cls.PROPS[field.name]
        if is_unknown(props.get(prop)):
            continue
        required = field.default is dataclasses.MISSING and not str(field.type).endswith("| None")
        if props.get(prop) is None or (required and props[prop] == ""):
            if required:
                found.append((prop, "is required"))
            continue
        fits, shape = _shape(str(field.type))
        if not fits(props[prop]):
            found.append((prop, f"must be {shape}, got {props[prop]!r}"))
    return found


def decode(cls: type[ArgsT], props: Mapping[str, Any]) -> ArgsT:
    """`props` as `cls`: absent props take the class's defaults; ValueError names every prop that does not fit."""
    found = problems(cls, props)
    if found:
        raise ValueError("; ".join(f"{prop} {reason}" for prop, reason in found))
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = props.get(cls.PROPS[field.name])
        if value is not None:
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)
