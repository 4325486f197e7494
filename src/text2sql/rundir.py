"""Stage folders and the run directory that holds them.

Every stage (prepare, train, merge, evaluate) writes its artifacts into one folder together with the
resolved config that produced them and a `stage.json` record: what the stage depended on (and its
fingerprint), when it finished. A stage is *current* when its folder holds a record whose
fingerprint equals the one asked for now; it is then skipped. A folder made from other inputs belongs
to a different run and is never replaced without `--force`. Stages are built in a staging folder and
renamed into place (`text2sql.atomic`), so a crash never leaves a half-written stage that looks
complete.

`StageFolder` is one such folder anywhere (`text2sql merge --output DIR`, `text2sql evaluate
--output DIR`); `RunDir` is a run's `output_dir`, whose stages are subfolders (`data`, `adapter`,
`merged`, `eval/finetuned`, ...).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from text2sql.atomic import is_populated, publish, staged
from text2sql.config import Config, save_config
from text2sql.errors import OutputExistsError

RECORD = "stage.json"
# Files hashed at most when a folder without a record is identified by its contents' sizes and times.
_MAX_IDENTITY_FILES = 2000


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


def source_identity(source: str | Path) -> dict[str, Any]:
    """What makes an input stale: a file's size and mtime (a folder's files), else just its name
    (a hub id, `bundled`, `tiny:llama`)."""
    path = Path(source)
    if not path.exists():
        return {"source": str(source)}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for f in files[:_MAX_IDENTITY_FILES]:
        st = f.stat()
        digest.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    return {"source": str(path.resolve()), "files": digest.hexdigest()[:16]}


def identity_of(source: str | Path) -> Any:
    """How a stage names an input it depends on: the fingerprint of a stage folder (a trained model,
    prepared data), else `source_identity` of a local file or folder, else the name itself."""
    recorded = StageFolder(source).fingerprint() if Path(source).is_dir() else None
    if recorded:
        return recorded
    return source_identity(source) if Path(source).exists() else str(source)


class StageFolder:
    """One stage's output folder and its `stage.json` record."""

    def __init__(self, path: str | Path, name: str | None = None):
        self.path = Path(path)
        self.name = name or self.path.name

    def record(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.path / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def fingerprint(self) -> str | None:
        return (self.record() or {}).get("fingerprint")

    def is_current(self, depends_on: dict[str, Any]) -> bool:
        return self.fingerprint() == fingerprint(depends_on)

    def guard(self, depends_on: dict[str, Any], force: bool, *, unfinished_ok: bool = False) -> bool:
        """True when the stage must run: `force`, or its output is missing. False when it is
        current. Raises when the folder holds something else (another run's output), unless `force`.

        `unfinished_ok`: a folder without a record (a stage that crashed before finishing) is simply
        redone; otherwise a non-empty folder without a record is refused.
        """
        if force or not self.path.exists():
            return True
        rec = self.record()
        if rec is not None and rec.get("fingerprint") == fingerprint(depends_on):
            return False
        if rec is None:
            if unfinished_ok or not is_populated(self.path):
                return True
            raise OutputExistsError(
                f"{self.path} exists and is not a finished text2sql {self.name} stage; "
                "pass --force to replace it, or choose another output folder"
            )
        keys = changed_keys(rec.get("depends_on", {}), depends_on)
        shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
        raise OutputExistsError(
            f"{self.path} holds a different run ({self.name} made with other inputs or settings: {shown}); "
            "pass --force to replace it, or choose another output folder"
        )

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A scratch sibling of the stage folder to build into; `commit` renames it into place, and
        it is removed if it was not committed."""
        with staged(self.path) as tmp:
            yield tmp

    def write_record(
        self, folder: Path, depends_on: dict[str, Any], extra: dict[str, Any] | None = None, cfg: Config | None = None
    ) -> None:
        """The record (and the config, when there is one) into `folder`: the staging folder before a
        commit, or the stage folder itself for a stage whose output was published by other means."""
        if cfg is not None:
            save_config(cfg, folder)
        record = {
            "stage": self.name,
            "fingerprint": fingerprint(depends_on),
            "depends_on": depends_on,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **(extra or {}),
        }
        tmp = folder / f".{RECORD}.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        tmp.replace(folder / RECORD)

    def commit(
        self, folder: Path, depends_on: dict[str, Any], extra: dict[str, Any] | None = None, cfg: Config | None = None
    ) -> Path:
        """Record `folder` (a finished staging folder) and swap it in for the stage folder."""
        self.write_record(folder, depends_on, extra, cfg)
        return publish(folder, self.path, replace=True)


class RunDir:
    """The output directory of one run: a stage folder per stage, and the run's config.yaml."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def stage(self, name: str) -> StageFolder:
        return StageFolder(self.root / name, name)

    def stage_dir(self, name: str) -> Path:
        return self.root / name

    def record(self, name: str) -> dict[str, Any] | None:
        return self.stage(name).record()

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

    def guard(self, name: str, depends_on: dict[str, Any], force: bool, *, unfinished_ok: bool = False) -> bool:
        """`StageFolder.guard` for stage `name`, after checking that the output_dir is a run's."""
        self.check_root(force)
        return self.stage(name).guard(depends_on, force, unfinished_ok=unfinished_ok)

    def mark(self, name: str, cfg: Config, depends_on: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        """Record a stage whose folder was written in place by a function that publishes atomically."""
        stage = self.stage(name)
        stage.write_record(stage.path, depends_on, extra, cfg)

    def commit(
        self, name: str, folder: Path, cfg: Config, depends_on: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> Path:
        """Write config + record into the staging `folder`, swap it in for the stage folder, and keep
        the run's own config.yaml current."""
        target = self.stage(name).commit(folder, depends_on, extra, cfg)
        save_config(cfg, self.root)
        return target
