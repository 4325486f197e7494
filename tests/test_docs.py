"""The docs stay true to the code: the configuration and CLI references are current (written by
tools/reference.py from the typed config and the verb table), and every relative link in the README
and docs/ points at a file that exists (and, with a #fragment, at a heading that exists)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from repo import ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _reference_module():
    spec = importlib.util.spec_from_file_location("reference", ROOT / "tools" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_references_are_current():
    reference = _reference_module()
    for name, text in (("config.md", reference.config_reference()), ("cli.md", reference.cli_reference())):
        path = ROOT / "docs" / "reference" / name
        assert path.is_file() and path.read_text(encoding="utf-8") == text, (
            f"{path} is not current: run python tools/reference.py"
        )


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings."""
    anchors = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def _documents() -> list[Path]:
    return [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, fragment = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(target)
        elif fragment and path.suffix == ".md" and fragment not in _anchors(path):
            broken.append(target)
    assert broken == [], f"{doc.name}: links that resolve to nothing: {broken}"
