"""What a bundled domain is, and the seeded value helpers its row generator uses."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from text2sql.data.bundled.conversations import Conversation
from text2sql.data.bundled.pairs import Template

Rows = dict[str, list[tuple]]


@dataclass(frozen=True)
class Domain:
    """One database of the bundled dataset.

    `schema` holds the CREATE TABLE statements, parents before children, exactly as they will be
    stored in sqlite_master. `populate` returns rows per table in insertion order (parents first,
    so that foreign keys are enforced while inserting). `conversations` are the follow-up split's
    templates (`text2sql.data.bundled.conversations`).
    """

    db_id: str
    schema: tuple[str, ...]
    populate: Callable[[random.Random], Rows]
    templates: tuple[Template, ...]
    conversations: tuple[Conversation, ...] = ()


# Plain ASCII and no apostrophes: a value must read the same in a question and in a SQL literal.
FIRST_NAMES = (
    "Aaron",
    "Abigail",
    "Adam",
    "Aisha",
    "Alice",
    "Andre",
    "Anna",
    "Ben",
    "Carlos",
    "Chen",
    "Chloe",
    "Daniel",
    "David",
    "Diana",
    "Elena",
    "Emily",
    "Ethan",
    "Fatima",
    "Felix",
    "Grace",
    "Hana",
    "Hugo",
    "Isaac",
    "Ivan",
    "Jack",
    "James",
    "Julia",
    "Kenji",
    "Laura",
    "Leo",
    "Lucas",
    "Maria",
    "Mateo",
    "Maya",
    "Mia",
    "Nadia",
    "Noah",
    "Olivia",
    "Omar",
    "Priya",
    "Rachel",
    "Ravi",
    "Rosa",
    "Samuel",
    "Sara",
    "Sofia",
    "Thomas",
    "Victor",
    "Yara",
    "Zoe",
)
LAST_NAMES = (
    "Adams",
    "Alvarez",
    "Bailey",
    "Baker",
    "Becker",
    "Brooks",
    "Brown",
    "Carter",
    "Chen",
    "Clark",
    "Costa",
    "Davis",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Gomez",
    "Gupta",
    "Hall",
    "Harris",
    "Hughes",
    "Ito",
    "Jensen",
    "Khan",
    "Kim",
    "Kowalski",
    "Lee",
    "Lopez",
    "Martin",
    "Meyer",
    "Moore",
    "Morgan",
    "Nguyen",
    "Novak",
    "Okafor",
    "Patel",
    "Perez",
    "Reed",
    "Rossi",
    "Russo",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Suzuki",
    "Taylor",
    "Turner",
    "Walker",
    "Wang",
    "Young",
)


def people(rng: random.Random, n: int) -> list[str]:
    """`n` distinct full names, so that a name identifies one person in a database."""
    indices = rng.sample(range(len(FIRST_NAMES) * len(LAST_NAMES)), n)
    return [f"{FIRST_NAMES[i // len(LAST_NAMES)]} {LAST_NAMES[i % len(LAST_NAMES)]}" for i in indices]


def day(rng: random.Random, first: date, last: date) -> str:
    """A random ISO date between `first` and `last`, inclusive."""
    return (first + timedelta(days=rng.randint(0, (last - first).days))).isoformat()


def distinct_amounts(rng: random.Random, n: int, low: float, high: float) -> list[float]:
    """`n` distinct amounts with cents in [low, high]: distinct so that ordering by them has no ties."""
    cents = rng.sample(range(round(low * 100), round(high * 100) + 1), n)
    return [c / 100 for c in cents]
