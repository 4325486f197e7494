"""Where text2sql keeps what it builds or downloads on this machine."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$TEXT2SQL_CACHE`, default `~/.cache/text2sql`: tiny models, remote copies, mirrors of remote runs."""
    return Path(os.environ.get("TEXT2SQL_CACHE") or "~/.cache/text2sql").expanduser()
