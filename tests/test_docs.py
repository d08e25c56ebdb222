"""The documentation stays usable: links resolve, commands exist, nothing points outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

DOCS = [
    ROOT / "README.md",
    ROOT / "BENCHMARKS.md",
    ROOT / "bootstrap" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MAKE_COMMAND = re.compile(r"(?:^|[\s`&;(])make ((?:[A-Z_]+=\S+ )*)([a-z][a-z0-9-]*)")
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
MAKE_TARGET = re.compile(r"^([a-z][a-z0-9-]*):", re.MULTILINE)
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)


def code(text: str) -> str:
    """The commands a reader may copy: fenced blocks and inline code spans (prose like "make turns" is not one)."""
    fenced = FENCED.findall(text)
    inline = INLINE.findall(FENCED.sub("", text))
    return "\n".join([*fenced, *inline])


def make_targets_named(text: str) -> set[str]:
    return {target for _, target in MAKE_COMMAND.findall(code(text))}


def relative_links(text: str) -> list[str]:
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z]+:", target)]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(heading) for heading in HEADING.findall(path.read_text(encoding="utf-8"))}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in relative_links(doc.read_text(encoding="utf-8")):
        file_part, _, fragment = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(ROOT)}")
    assert broken == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_doc_names_a_path_outside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert f"{ROOT.parent}/" not in text  # the folder around the repository, as this machine spells it
    assert "../shared" not in text


def test_the_first_screen_of_the_readme_shows_plan_and_test() -> None:
    first_screen = "\n".join((ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:40])
    assert "make plan" in first_screen
    assert "make test" in first_screen


def test_every_make_target_the_readme_names_exists() -> None:
    targets = set(MAKE_TARGET.findall((ROOT / "Makefile").read_text(encoding="utf-8")))
    named = make_targets_named((ROOT / "README.md").read_text(encoding="utf-8"))
    assert named, "the README names no make target"
    assert sorted(named - targets) == []


def test_the_helpers_find_what_they_should() -> None:
    """The checks above would pass vacuously if their patterns matched nothing."""
    text = "see [a](docs/a.md#b-c), [web](https://example.com): `make plan STACK=prod`, `cd x && make e2e`;\n"
    text += "make turns codes into 2\n```sh\nmake fleet ACTION=up   # then make it so\n```\n"
    assert relative_links(text) == ["docs/a.md#b-c"]
    assert make_targets_named(text) == {"plan", "e2e", "fleet", "it"}
    assert anchor("A client stack (`mode: client`)") == "a-client-stack-mode-client"
    assert MAKE_TARGET.findall("plan: $(VENV)\n\techo\nonboard-clients: x\n") == ["plan", "onboard-clients"]
