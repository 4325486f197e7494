"""Where text2sql keeps what it builds or downloads on this machine, and what names the hub."""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path

# A Hugging Face repo id: `owner/name` or a bare `name` (models such as `gpt2`), at most 96 characters each.
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


def cache_root() -> Path:
    """`$TEXT2SQL_CACHE`, default `~/.cache/text2sql`: tiny models, remote copies, mirrors of remote runs."""
    return Path(os.environ.get("TEXT2SQL_CACHE") or "~/.cache/text2sql").expanduser()


def is_hub_id(name: str, *, owner: bool = False, file_suffixes: Collection[str] = ()) -> bool:
    """Whether `name` is a hub repo id rather than something local: `owner/name` (a bare `name` too
    unless `owner`), not a path that exists, not a URL or a `tiny:` spec, without `..` or `--`; a
    name ending in one of `file_suffixes` (lower case) is a missing local file, a typo, not an id."""
    if not _HUB_ID.match(name) or ".." in name or "--" in name:
        return False
    if owner and "/" not in name:
        return False
    if Path(name).suffix.lower() in file_suffixes:
        return False
    return not Path(name).expanduser().exists()
