"""What a synthesis run kept and dropped: pairs per complexity class and per database, drops per
reason (overall and per class), how joins were found, and how long it took; printed as two small
tables and written as JSON beside the pairs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from text2sql.data.synth.shapes import CLASSES


@dataclass
class SynthReport:
    requested: int = 0
    seed: int = 0
    teacher: str | None = None
    kept: Counter = field(default_factory=Counter)  # class -> pairs
    dropped: dict[str, Counter] = field(default_factory=dict)  # class -> reason -> candidates
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def drop(self, cls: str, reason: str) -> None:
        self.dropped.setdefault(cls, Counter())[reason] += 1

    def drop_reasons(self) -> Counter:
        total: Counter = Counter()
        for reasons in self.dropped.values():
            total.update(reasons)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "kept": sum(self.kept.values()),
            "seed": self.seed,
            "teacher": self.teacher,
            "seconds": round(self.seconds, 2),
            "kept_by_class": {c: self.kept.get(c, 0) for c in CLASSES},
            "dropped_by_reason": dict(self.drop_reasons().most_common()),
            "dropped_by_class": {c: dict(self.dropped[c].most_common()) for c in CLASSES if c in self.dropped},
            "databases": self.databases,
        }

    def table(self) -> str:
        """Pairs kept and candidates dropped per class, then drops per reason."""
        lines = [f"{'class':<15}{'kept':>7}{'dropped':>9}"]
        for c in CLASSES:
            lines.append(f"{c:<15}{self.kept.get(c, 0):>7}{sum(self.dropped.get(c, Counter()).values()):>9}")
        lines.append(f"{'total':<15}{sum(self.kept.values()):>7}{sum(self.drop_reasons().values()):>9}")
        reasons = self.drop_reasons()
        if reasons:
            lines.append("")
            lines.append(f"{'drop reason':<24}{'candidates':>11}")
            lines.extend(f"{reason:<24}{count:>11}" for reason, count in reasons.most_common())
        return "\n".join(lines)
