"""Writing synthesized pairs: a JSONL file `data.train` reads, and the report as JSON beside it
(`pairs.jsonl` -> `pairs.report.json`), each written whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

from text2sql.data.synth.report import SynthReport
from text2sql.data.synth.sampler import Pair
from text2sql.errors import ConfigError, OutputExistsError


def report_path(output: Path) -> Path:
    return output.with_name(output.stem + ".report.json")


def check_output(output: Path, force: bool) -> None:
    """Refuse, before any work, an output that is not .jsonl or that exists without `force`."""
    if output.suffix.lower() != ".jsonl":
        raise ConfigError(f"--output {output}: write the pairs to a .jsonl file (data.train reads it as such)")
    if output.is_dir():
        raise OutputExistsError(f"--output {output} is a folder; give a .jsonl file path")
    for path in (output, report_path(output)):
        if path.exists() and not force:
            raise OutputExistsError(f"{path} exists; pass --force to replace it, or choose another --output")


def write_pairs(pairs: list[Pair], report: SynthReport, output: Path) -> None:
    """The pairs as JSONL rows and the report beside them, each through a temporary file renamed
    into place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    counters: dict[str, int] = {}
    lines = []
    for pair in pairs:
        counters[pair.db_id] = counters.get(pair.db_id, 0) + 1
        lines.append(json.dumps(pair.row(counters[pair.db_id]), ensure_ascii=False) + "\n")
    _write(output, "".join(lines))
    _write(report_path(output), json.dumps(report.to_dict(), indent=2) + "\n")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
