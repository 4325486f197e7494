"""One run directory: each stage writes its artifacts into a folder of `output_dir` with the resolved
config that produced them and a `stage.json` record (what the stage depended on, when it finished).

A stage is *current* when its folder holds a record whose config fingerprint equals the one asked
for now; it is then skipped. A folder made from a different config belongs to a different run and
is never replaced without `--force`. Stages are built in a staging folder and renamed into place,
so a crash never leaves a half-written stage that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from text2sql.config import Config, save_config
from text2sql.errors import OutputExistsError

RECORD = "stage.json"


def fingerprint(values: dict[str, Any]) -> str:
    blob = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


class RunDir:
    """The output directory of one run."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def record(self, stage: str) -> dict[str, Any] | None:
        path = self.stage_dir(stage) / RECORD
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def check_root(self, force: bool) -> None:
        """Refuse a non-empty output_dir that holds something other than text2sql runs."""
        if force or not self.root.exists():
            return
        if not self.root.is_dir():
            raise OutputExistsError(f"output_dir {self.root} is a file; choose a folder path")
        entries = [p for p in self.root.iterdir() if not p.name.startswith(".")]
        if entries and not (self.root / "config.yaml").is_file():
            raise OutputExistsError(
                f"output_dir {self.root} is not empty and holds no text2sql run; "
                "choose another output_dir or pass --force"
            )

    def is_current(self, stage: str, depends_on: dict[str, Any]) -> bool:
        rec = self.record(stage)
        return rec is not None and rec.get("fingerprint") == fingerprint(depends_on)

    def guard(self, stage: str, depends_on: dict[str, Any], force: bool, *, unfinished_ok: bool = False) -> bool:
        """True when the stage must run; False when it is current. Raises on a different run.

        `unfinished_ok`: a stage folder without a record (a crash mid-stage) is simply redone.
        """
        self.check_root(force)
        target = self.stage_dir(stage)
        if not target.exists():
            return True
        rec = self.record(stage)
        if rec is not None and rec.get("fingerprint") == fingerprint(depends_on):
            return False
        if force:
            return True
        if rec is None and unfinished_ok:
            return True
        if rec is None:
            raise OutputExistsError(
                f"{target} exists but is not a finished text2sql {stage} stage; "
                "pass --force to replace it, or choose another output_dir"
            )
        keys = changed_keys(rec.get("depends_on", {}), depends_on)
        shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
        raise OutputExistsError(
            f"{target} holds a different run ({stage} made with other settings: {shown}); "
            "pass --force to replace it, or choose another output_dir"
        )

    @contextmanager
    def staging(self, stage: str) -> Iterator[Path]:
        """A scratch folder beside the stage; renamed into place by `commit`, removed on failure."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{stage}.tmp-", dir=self.root))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def mark(self, stage: str, cfg: Config, depends_on: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        """Record a stage whose folder was written in place by a function that publishes atomically."""
        target = self.stage_dir(stage)
        save_config(cfg, target)
        self._write_record(target, stage, depends_on, extra)

    def _write_record(self, target: Path, stage: str, depends_on: dict[str, Any], extra: dict[str, Any] | None) -> None:
        record = {
            "stage": stage,
            "fingerprint": fingerprint(depends_on),
            "depends_on": depends_on,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **(extra or {}),
        }
        tmp = target / f".{RECORD}.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        tmp.replace(target / RECORD)

    def commit(
        self,
        stage: str,
        staged: Path,
        cfg: Config,
        depends_on: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write config + record into `staged`, then swap it in for the stage folder."""
        save_config(cfg, staged)
        self._write_record(staged, stage, depends_on, extra)
        target = self.stage_dir(stage)
        if target.exists():
            old = target.with_name(f".{stage}.old-{int(time.time() * 1000)}")
            target.rename(old)
            staged.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staged.rename(target)
        save_config(cfg, self.root)
        return target
