"""Durations as people write them: `--budget 30m`, `1h30m`, `90s`, `2h`; and back into words."""

from __future__ import annotations

import re

from text2sql.errors import ConfigError

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([hms])")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_budget(text: str) -> float:
    """Seconds in `text` (`30m`, `1h30m`, `90s`, `1.5h`); ConfigError naming the expected form."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(f"{n}{u}" for n, u in parts) != compact:
        raise ConfigError(f"--budget {text}: give a duration with its unit, such as 30m, 2h, 1h30m or 90s")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"--budget {text}: the budget must be longer than zero, such as 30m")
    return seconds


def format_duration(seconds: float) -> str:
    """`45 s`, `12 min`, `1 h 05 min`: rounded to what a person plans with."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.1f} min" if minutes < 10 else f"{minutes:.0f} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{hours} h {rest:02d} min"
