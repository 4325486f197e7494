"""Regenerate the bundled databases and question/SQL pairs.

    python -m text2sql.data.bundled.generate [--output-dir DIR] [--seed 0]

Deterministic: every random choice comes from a `random.Random` seeded with a string built from
`seed` (string seeds are hashed with SHA-512, not Python's randomised `hash`), and every query
result that feeds a choice is sorted first. Two runs with the same seed write byte-identical JSONL
and databases with identical content.

Each SQL template yields up to PAIRS_PER_TEMPLATE pairs; templates whose database offers fewer
value combinations yield fewer. The follow-up split (followup.jsonl) comes after the other splits, from
random generators of its own, so the other files do not change with it: each domain's conversation
templates yield up to INTERACTIONS_PER_CONVERSATION interactions (`conversations`), one line per turn.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

from text2sql.data.bundled import BUNDLED_DIR, FOLLOWUP, SPLITS, SQL_COMPLEXITIES
from text2sql.data.bundled.conversations import Interaction, expand_conversation
from text2sql.data.bundled.domains import DOMAINS, Domain
from text2sql.data.bundled.pairs import Pair, complexity, expand
from text2sql.data.bundled.split import split_pairs

# About 60 templates x 64 = 3,840 pairs before the smaller templates run out of values: enough
# for a tiny model to learn every template, few enough to train on a CPU in minutes.
PAIRS_PER_TEMPLATE = 64
# 12 conversation templates x 9 = about 100 interactions of 3-4 turns: a follow-up evaluation that
# runs in seconds.
INTERACTIONS_PER_CONVERSATION = 9


def generate(output_dir: Path = BUNDLED_DIR, seed: int = 0) -> dict[str, Counter]:
    """Write the databases, the three JSONL splits and the follow-up split under `output_dir`; return
    row counts by split, and by complexity and by database over the three splits."""
    output_dir = Path(output_dir)
    seen_questions: set[str] = set()
    pairs: list[Pair] = []
    ids: dict[str, str] = {}  # question -> id; questions are unique across the whole dataset
    for domain in DOMAINS:
        path = output_dir / "databases" / domain.db_id / f"{domain.db_id}.sqlite"
        build_database(domain, path, random.Random(f"{seed}:{domain.db_id}:rows"))
        rng = random.Random(f"{seed}:{domain.db_id}:pairs")
        domain_pairs: list[Pair] = []
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            for template in domain.templates:
                domain_pairs += expand(template, domain.db_id, conn, rng, PAIRS_PER_TEMPLATE, seen_questions)
        _check_one_template_per_sql(domain_pairs)
        for number, pair in enumerate(domain_pairs, start=1):
            ids[pair.question] = f"{domain.db_id}-{number:05d}"
        pairs += domain_pairs

    splits = split_pairs(pairs, random.Random(f"{seed}:split"))
    counts: dict[str, Counter] = {"split": Counter(), "complexity": Counter(), "db_id": Counter()}
    for split in SPLITS:
        rows = sorted(
            (
                {
                    "id": ids[p.question],
                    "db_id": p.db_id,
                    "question": p.question,
                    "sql": p.sql,
                    "sql_complexity": p.complexity,
                }
                for p in splits[split]
            ),
            key=lambda row: row["id"],
        )
        with open(output_dir / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        counts["split"][split] = len(rows)
        counts["complexity"].update(row["sql_complexity"] for row in rows)
        counts["db_id"].update(row["db_id"] for row in rows)
    unknown = set(counts["complexity"]) - set(SQL_COMPLEXITIES)
    if unknown:
        raise ValueError(f"labels outside the taxonomy: {sorted(unknown)}; add them to SQL_COMPLEXITIES")
    counts["split"][FOLLOWUP] = write_followup(output_dir, seed, {p.sql for p in pairs})
    return counts


def write_followup(output_dir: Path, seed: int, taken_sql: set[str]) -> int:
    """Write followup.jsonl from the databases under `output_dir`; return its number of turns. A row
    is one turn: {"id", "db_id", "interaction_id", "turn", "question", "sql", "sql_complexity",
    "history"}, where history holds the earlier turns' [question, sql], oldest first."""
    rows = []
    for domain in DOMAINS:
        path = output_dir / "databases" / domain.db_id / f"{domain.db_id}.sqlite"
        rng = random.Random(f"{seed}:{domain.db_id}:followup")
        interactions: list[Interaction] = []
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            for conversation in domain.conversations:
                interactions += expand_conversation(
                    conversation, domain.db_id, conn, rng, INTERACTIONS_PER_CONVERSATION, taken_sql
                )
        for number, interaction in enumerate(interactions, start=1):
            interaction_id = f"{domain.db_id}-c{number:03d}"
            for turn, (question, sql) in enumerate(interaction.turns, start=1):
                rows.append(
                    {
                        "id": f"{interaction_id}-t{turn}",
                        "db_id": domain.db_id,
                        "interaction_id": interaction_id,
                        "turn": turn,
                        "question": question,
                        "sql": sql,
                        "sql_complexity": complexity(sql),
                        "history": [list(t) for t in interaction.turns[: turn - 1]],
                    }
                )
    with open(output_dir / f"{FOLLOWUP}.jsonl", "w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return len(rows)


def build_database(domain: Domain, path: Path, rng: random.Random) -> None:
    """(Re)create one SQLite file from the domain's schema and seeded rows, foreign keys enforced."""
    rows = domain.populate(rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(path.name + ".building")
    building.unlink(missing_ok=True)
    with closing(sqlite3.connect(building)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")  # a row that breaks a foreign key fails here
        for statement in domain.schema:
            conn.execute(statement)
        for table, table_rows in rows.items():
            placeholders = ", ".join("?" * len(table_rows[0]))
            conn.executemany(f"INSERT INTO {table} VALUES ({placeholders})", table_rows)
        conn.commit()
        conn.execute("VACUUM")  # compact: the file ships inside the package
    os.replace(building, path)


def _check_one_template_per_sql(pairs: list[Pair]) -> None:
    # The split keeps an evaluation query out of train only within its template; a query that two
    # templates produce could reach train through the other one.
    owner: dict[str, str] = {}
    for pair in pairs:
        if owner.setdefault(pair.sql, pair.template) != pair.template:
            raise ValueError(f"templates {owner[pair.sql]} and {pair.template} both produce {pair.sql!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m text2sql.data.bundled.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--output-dir", type=Path, default=BUNDLED_DIR, help="where to write (default: inside the package)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    counts = generate(args.output_dir, args.seed)
    seconds = time.perf_counter() - start
    total = sum(counts["split"].values())
    print(f"wrote {total} pairs to {args.output_dir} in {seconds:.1f} s")
    for name, counter in counts.items():
        print(f"  by {name}: " + ", ".join(f"{key} {value}" for key, value in sorted(counter.items())))


if __name__ == "__main__":
    main()
