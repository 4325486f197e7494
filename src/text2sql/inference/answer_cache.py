"""Answers an endpoint gave, kept on disk so that a rerun, or a run stopped by a crash or Ctrl-C,
asks again only what was never answered.

One JSONL file per endpoint and model, one line per answer, appended with a single write as soon as
the answer arrives. A line is found again by its key: a digest of the endpoint, the model, the
messages and the decoding settings, so a changed prompt or setting is a new question. A last line
torn by a crash does not parse and is ignored; the next answer starts on a line of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from text2sql.paths import cache_root


def answers_folder() -> Path:
    """Where answers are kept when no run folder is given: `<cache root>/answers`."""
    return cache_root() / "answers"


def cache_file(folder: str | Path, endpoint: str, model: str) -> Path:
    """The cache file of `model` at `endpoint` in `folder`: the model's name made safe for a file
    name, and a digest of both, since one name (e.g. `text2sql`) may be served at several endpoints."""
    digest = hashlib.sha256(f"{endpoint}\n{model}".encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._")[:60] or "model"
    return Path(folder) / f"{safe}-{digest}.jsonl"


def answer_key(endpoint: str, model: str, messages: Sequence[dict[str, str]], decoding: dict[str, Any]) -> str:
    """The digest one answer is kept under: what was asked, of whom, and how."""
    blob = json.dumps(
        {"endpoint": endpoint, "model": model, "messages": list(messages), "decoding": decoding},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class AnswerCache:
    """The answers kept in one file, loaded when opened; `put` appends one (thread-safe)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        self.torn = 0  # lines that did not parse (a write cut short by a crash)
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    self.torn += 1
                    continue
                if (
                    isinstance(record, dict)
                    and isinstance(record.get("key"), str)
                    and isinstance(record.get("texts"), list)
                ):
                    self._entries[record["key"]] = record
                else:
                    self.torn += 1

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Keep `record` under `key`: one line, appended in one write, after a newline when the file
        ends in a torn line."""
        entry = {"key": key, **record}
        data = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and not _ends_with_newline(self.path, size):
                    data = b"\n" + data
                os.write(fd, data)
            finally:
                os.close(fd)
            self._entries[key] = entry


def _ends_with_newline(path: Path, size: int) -> bool:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"
